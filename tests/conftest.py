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


@pytest.fixture
def compose() -> Iterator:
    """``compose(config_name, overrides)`` over the project's configs, Hydra state cleaned up."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from mnistfw.config.location import config_dir

    def _compose(overrides: list[str] | None = None, config_name: str = "train", hydra_config: bool = False):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return hydra_compose(config_name, overrides=overrides or [], return_hydra_config=hydra_config)

    yield _compose
    GlobalHydra.instance().clear()
