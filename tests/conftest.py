"""Shared test helpers: paths, running the installed console scripts, composing configs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SHARED_DATA = Path(os.environ.get("MNISTFW_DATA_DIR", REPO.parent / "shared" / "data"))


def script(name: str) -> str:
    """Path of an installed console script (``mnistfw-train``, ...) of this environment."""
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in {BIN}; run the README's test command (pip install -e '.[dev]')")
    return str(path)


def run_cli(
    name: str, *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    """Run an installed console script and capture its output (never raises on failure)."""
    full_env = {**os.environ, "MNISTFW_DATA_DIR": str(cwd / "no-data"), "PYTHONHASHSEED": "0"}
    full_env.pop("MNISTFW_OUTPUT_DIR", None)
    full_env.update(env or {})
    return subprocess.run(
        [script(name), *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def png_ok(path: Path) -> bool:
    """True when ``path`` is a real, non-trivial, non-blank PNG image."""
    from PIL import Image

    if not path.is_file() or path.stat().st_size < 1000:
        return False
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        extrema = img.convert("L").getextrema()
        return img.size[0] > 50 and img.size[1] > 50 and extrema[0] != extrema[1]


def compose_config(overrides: list[str] | None = None, config_name: str = "train", hydra_config: bool = False,
                   output_dir: Path | None = None):  # noqa: ANN201 - a DictConfig
    """Compose one of the project's configs outside a Hydra run (Hydra's global state is cleared).

    There is no run folder outside a Hydra run, so ``paths.output_dir`` is set to ``output_dir``
    (a temporary folder when not given).
    """
    import tempfile

    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from mnistfw.config.location import config_dir

    overrides = list(overrides or [])
    if config_name != "predict" and not any(o.startswith("paths.output_dir=") for o in overrides):
        overrides.append(f"paths.output_dir={output_dir or tempfile.mkdtemp(prefix='mnistfw-test-')}")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return hydra_compose(config_name, overrides=overrides, return_hydra_config=hydra_config)
    finally:
        GlobalHydra.instance().clear()


def backend_from(overrides: list[str], run_dir: Path | None = None):  # noqa: ANN201 - a Backend
    """A fresh backend from a composed, validated ``train`` config."""
    from mnistfw.app.run_spec import build_run_spec

    return build_run_spec(compose_config(overrides, output_dir=run_dir), run_dir).make_backend()


@pytest.fixture
def compose(tmp_path: Path) -> Iterator:
    """``compose(overrides, config_name)`` over the project's configs (see :func:`compose_config`)."""

    def _compose(overrides: list[str] | None = None, config_name: str = "train", hydra_config: bool = False):
        return compose_config(overrides, config_name, hydra_config, output_dir=tmp_path)

    yield _compose


@pytest.fixture
def make_backend() -> Iterator:
    """``make_backend(overrides, run_dir=None)``: see :func:`backend_from`."""
    yield backend_from
