"""The ``mnistfw_optuna`` Hydra sweeper: Optuna search with pruning, resume and worker processes."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

# Importing the config module registers hydra/sweeper=mnistfw_optuna in the ConfigStore.
from hydra_plugins.mnistfw_optuna_sweeper import sweeper_config as _config  # noqa: F401


class MnistfwOptunaSweeper(Sweeper):
    """Hydra's entry point; the work is done by :class:`mnistfw.sweeps.sweeper.OptunaSweep`."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self._impl: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from mnistfw.sweeps.sweeper import OptunaSweep

        self.hydra_context = hydra_context
        self.config = config
        self._impl = OptunaSweep(self.settings)
        self._impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self._impl.sweep(arguments)
