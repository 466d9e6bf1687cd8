"""A non-editable install (a built wheel) ships the configs and composes from them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.slow
def test_core_install_has_no_spark_and_trains_the_default(tmp_path: Path) -> None:
    """A fresh venv with `pip install -c constraints.txt .` (no extras): no pyspark, the default config
    trains, and model=spark_mlp says in one line what to install."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-c", str(REPO / "constraints.txt"), str(REPO)],
                         capture_output=True, text=True, timeout=1800)
    assert pip.returncode == 0, pip.stderr[-3000:]
    python = str(venv / "bin" / "python")
    probe = subprocess.run([python, "-c", "import importlib.util as u; print(u.find_spec('pyspark') is None)"],
                           capture_output=True, text=True)
    assert probe.stdout.strip() == "True"
    env = {**os.environ, "MNISTFW_DATA_DIR": str(tmp_path / "no-data")}
    train = subprocess.run([str(venv / "bin" / "mnistfw-train"), "trainer.max_epochs=1", "visualization=none"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert train.returncode == 0, train.stderr[-3000:]
    assert list(tmp_path.glob("outputs/train/runs/*/metrics.json"))
    spark = subprocess.run([str(venv / "bin" / "mnistfw-train"), "model=spark_mlp"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert spark.returncode == 2
    assert spark.stderr.strip() == ("error: model=spark_mlp needs the 'pyspark' package; "
                                    "pip install 'mnistfw[spark]'")
