"""Faults during a run give one ``error:`` line, the right exit status and no torn files:
a full disk, an output folder under a file, Ctrl-C in a NumPy run and in a sweep."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import run_cli, script

QUICK = ["debug=default", "visualization=none"]


def _can_mount_tmpfs(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    mount = f"mount -t tmpfs -o size=64k tmpfs {probe}"
    proc = subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-c", mount], capture_output=True)
    return proc.returncode == 0


@pytest.mark.parametrize("model", ["lightning_mlp", "numpy_net"])
def test_a_full_disk_is_one_line_and_leaves_no_torn_file(tmp_path: Path, model: str) -> None:
    if not _can_mount_tmpfs(tmp_path):
        pytest.skip("this machine lets no process mount a small tmpfs (unshare --mount --map-root-user), "
                    "so a full disk cannot be made for the test")
    disk = tmp_path / "small_disk"
    disk.mkdir()
    env = {**os.environ, "MNISTFW_DATA_DIR": str(tmp_path / "no-data")}
    command = (f"mount -t tmpfs -o size=600k tmpfs {disk} && {script('mnistfw-train')} model={model} "
               f"{' '.join(QUICK)} paths.log_dir={disk}/out; echo EXIT=$?; find {disk} -type f")
    proc = subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-c", command], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert "EXIT=2" in proc.stdout, proc.stderr[-3000:]
    assert len(errors) == 1 and "No space left on device" in errors[0] and str(disk) in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    left = [line for line in proc.stdout.splitlines() if line.startswith(str(disk))]
    assert not any(Path(p).name.startswith(".") for p in left), left  # no temporary file left behind
    assert not any(p.endswith((".ckpt", ".pt", ".npz", "metrics.json")) for p in left), left


def test_an_output_folder_under_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("not a folder")
    proc = run_cli("mnistfw-train", *QUICK, f"paths.log_dir={tmp_path / 'a_file' / 'out'}", cwd=tmp_path)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-3000:]
    assert "a_file" in errors[0] and "is a file, not a folder" in errors[0]


def _interrupt_after(args: list[str], marker: str, tmp_path: Path) -> tuple[int, str]:
    env = {**os.environ, "MNISTFW_DATA_DIR": str(tmp_path / "no-data")}
    proc = subprocess.Popen([script("mnistfw-train"), *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None
    text, deadline = "", time.time() + 180
    while time.time() < deadline:
        line = proc.stdout.readline()
        text += line
        if marker in line or not line:
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    return proc.returncode, text + rest


def test_ctrl_c_in_a_numpy_run_is_one_line_and_status_130(tmp_path: Path) -> None:
    status, text = _interrupt_after(["model=numpy_net", "data=mnist_sample", "visualization=none",
                                     "trainer.max_epochs=100000", "trainer.enable_progress_bar=false"],
                                    "epoch 2 ", tmp_path)
    assert status == 130, text[-3000:]
    assert "error: interrupted (Ctrl-C)" in text and "Traceback" not in text and "KeyboardInterrupt" not in text


def test_ctrl_c_in_a_sweep_is_one_line_and_status_130(tmp_path: Path) -> None:
    status, text = _interrupt_after(["-m", "hparams_search=numpy_optuna", "data=mnist_sample", "visualization=none",
                                     "trainer.max_epochs=100000", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                                     "hydra.sweeper.storage=memory"], "epoch 2 ", tmp_path)
    assert status == 130, text[-3000:]
    assert "error: interrupted (Ctrl-C)" in text and "Traceback" not in text, text[-3000:]
