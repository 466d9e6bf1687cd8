"""A non-editable install (a built wheel) ships the configs and composes from them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_wheel_ships_configs_and_composes(tmp_path: Path) -> None:
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = wheel_dir.glob("mnistfw-*.whl")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr
    assert (target / "mnistfw" / "configs" / "train.yaml").is_file()
    code = (
        "import sys\n"
        "from mnistfw.config.location import config_dir\n"
        "print('CONFIGS', config_dir())\n"
        "from mnistfw.cli.train import main\n"
        "sys.argv = ['mnistfw-train', '--cfg', 'job', 'model=numpy_net']\n"
        "main()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"CONFIGS {target / 'mnistfw' / 'configs'}" in proc.stdout
    assert "backend: numpy_net" in proc.stdout
