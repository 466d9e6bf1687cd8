"""Lightning loggers from the ``logger`` config group."""

from __future__ import annotations

import importlib.util
from typing import Any

from mnistfw.errors import ConfigError

_REQUIRES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}


def build_loggers(logger_cfg: Any) -> list[Any]:
    """One Lightning logger per key of ``logger_cfg`` (csv, tensorboard, mlflow)."""
    from pytorch_lightning import loggers

    result: list[Any] = []
    for name, opts in dict(logger_cfg).items():
        opts = dict(opts or {})
        package = _REQUIRES.get(name)
        if package and importlib.util.find_spec(package) is None:
            raise ConfigError(f"logger={name} needs the '{package}' package; pip install 'mnistfw[{name}]'")
        if name == "csv":
            result.append(
                loggers.CSVLogger(save_dir=opts.get("save_dir", "."), name=opts.get("name", "csv"), version="")
            )
        elif name == "tensorboard":
            result.append(
                loggers.TensorBoardLogger(save_dir=opts.get("save_dir", "."), name=opts.get("name", "tb"), version="")
            )
        elif name == "mlflow":
            result.append(loggers.MLFlowLogger(**opts))
        else:
            raise ConfigError(f"logger.{name}: unknown logger; use csv, tensorboard or mlflow")
    return result
