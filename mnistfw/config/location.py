"""Where the YAML configs live: inside the package when installed from a wheel
(``mnistfw/configs``), the repository's top-level ``configs/`` in a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def config_dir() -> Path:
    """Absolute path of the config folder Hydra composes from."""
    installed = _PACKAGE_DIR / "configs"
    if installed.is_dir():
        return installed
    source = _PACKAGE_DIR.parent / "configs"
    if source.is_dir():
        return source
    raise FileNotFoundError(f"mnistfw configs not found in {installed} or {source}; reinstall mnistfw")
