"""Shared plumbing of the Hydra-based console scripts."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mnistfw.errors import MnistfwError

log = logging.getLogger("mnistfw")


def format_hydra_error(exc: BaseException) -> str:
    """One line for a Hydra composition error: the key or option, and what is allowed."""
    from hydra.errors import MissingConfigException

    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:
        group, _, option = str(exc.missing_cfg_file).rpartition("/")
        if exc.options:
            return f"{group}={option}: no such option; available: {', '.join(exc.options)}"
        return f"config '{exc.missing_cfg_file}' not found"
    cause = exc.__cause__
    parent = getattr(cause, "parent_node", None)
    full_key = getattr(cause, "full_key", None)
    if full_key and parent is not None and hasattr(parent, "keys"):
        allowed = ", ".join(str(k) for k in parent if k != "hydra")
        return f"{full_key}: unknown key; allowed here: {allowed} (a new key needs a leading +: +{full_key}=...)"
    if cause is not None and str(cause).strip():
        return f"{first} ({str(cause).strip().splitlines()[0]})"
    return first


def _to_log_files(message: str) -> None:
    """Append ``message`` to the run's log file(s) without echoing it on the console again."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.emit(logging.makeLogRecord({"name": "mnistfw", "levelno": logging.ERROR,
                                                "levelname": "ERROR", "msg": message}))


def _discard_if_bare(run_dir: Path) -> None:
    """Remove a failed run's folder when it holds only Hydra's bookkeeping (``.hydra/``, logs)."""
    if not run_dir.is_dir():
        return
    here, folder = Path.cwd().resolve(), run_dir.resolve()
    if folder == here or folder in here.parents:  # hydra.run.dir=. : never remove the working folder
        return
    if any(p.name != ".hydra" and p.suffix != ".log" for p in run_dir.iterdir()):
        return
    import shutil

    logging.shutdown()  # close the log file before removing it
    shutil.rmtree(run_dir, ignore_errors=True)


def hydra_entry(config_name: str, task: Callable[[Any, Path], Any]) -> Callable[[], Any]:
    """A console-script ``main`` running ``task(cfg, run_dir)`` under ``@hydra.main``.

    Config composition errors and :class:`MnistfwError` in a single run are printed as one
    line (``error: ...``) and exit with status 2, and the run folder is removed when nothing
    but Hydra's config copy and log were written to it; in a multirun a job's MnistfwError
    propagates so the sweeper records the job as failed. ``HYDRA_FULL_ERROR=1`` shows Hydra's
    own messages and tracebacks instead.
    """

    def main() -> Any:
        import hydra
        from hydra.errors import HydraException

        from mnistfw.config.location import config_dir

        user_wants_full_errors = "HYDRA_FULL_ERROR" in os.environ
        # Let Hydra raise instead of printing, so the message can be made one line here.
        os.environ.setdefault("HYDRA_FULL_ERROR", "1")

        @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=config_name)
        def _run(cfg: Any) -> Any:
            from hydra.core.hydra_config import HydraConfig
            from hydra.types import RunMode

            hc = HydraConfig.get()
            try:
                return task(cfg, Path(hc.runtime.output_dir))
            except MnistfwError as exc:
                if hc.mode == RunMode.MULTIRUN:
                    raise
                _to_log_files(f"error: {exc}")
                print(f"error: {exc}", file=sys.stderr)
                _discard_if_bare(Path(hc.runtime.output_dir))
                sys.exit(2)

        try:
            return _run()
        except HydraException as exc:
            if user_wants_full_errors:
                raise
            print(f"error: {format_hydra_error(exc)}", file=sys.stderr)
            sys.exit(2)
        except MnistfwError as exc:
            if user_wants_full_errors:
                raise
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)

    return main
