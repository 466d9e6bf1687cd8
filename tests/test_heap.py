"""The collector pause around a command's start-up (mnistfw.app.heap), in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_settle_ends_a_pause_by_freezing_what_start_up_created() -> None:
    out = _run("""
        import gc
        from mnistfw.app import heap
        heap.pause()
        before = gc.isenabled()
        start_up = [[i] for i in range(1000)]   # long-lived objects made while paused
        heap.settle()
        print(before, gc.isenabled(), gc.get_freeze_count() >= 1000)
    """)
    assert out == "False True True"


def test_settle_leaves_a_running_collector_alone() -> None:
    # A library caller, or the second run in one process: nothing of theirs is frozen.
    out = _run("""
        import gc
        from mnistfw.app import heap
        gc.unfreeze()
        heap.settle()
        print(gc.isenabled(), gc.get_freeze_count())
    """)
    assert out == "True 0"


def test_a_training_command_collects_again_during_its_fit(tmp_path) -> None:
    # The CLI pauses the collector at start; the run must turn it back on before training.
    out = _run(f"""
        import gc, sys
        import mnistfw.app.train_task as task
        seen = []
        draw_later = task.prepare_plotting  # called just before the fit
        def prepare_plotting():
            seen.append((gc.isenabled(), gc.get_freeze_count() > 0))
            draw_later()
        task.prepare_plotting = prepare_plotting
        sys.argv = ["mnistfw-train", "model=baseline_logreg", "trainer.max_epochs=1",
                    "hydra.run.dir={tmp_path}", "logger=none"]
        from mnistfw.cli.train import main
        main()
        print(seen, gc.isenabled())
    """)
    assert out.splitlines()[-1] == "[(True, True)] True"
