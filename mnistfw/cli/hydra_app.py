"""Shared plumbing of the Hydra-based console scripts: the task Hydra calls, and one-line errors.

Every expected failure ends the same way here: a :class:`MnistfwError` (bad config, damaged
file, missing plugin), an ``OSError`` (full or read-only disk, a path under a file) or a
composition error prints ``error: <one line>`` and exits with status 2; Ctrl-C prints one line
and exits with 130. A failed single run removes its folder when only Hydra's bookkeeping is in
it. In a multirun a job's error propagates so the sweeper records the job as failed.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mnistfw.errors import MnistfwError

log = logging.getLogger("mnistfw")

#: ``run(cfg, run_dir, epoch_callbacks)``: the work of one console script.
RunFunction = Callable[[Any, Path, Sequence[Any]], Any]


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
    if "Could not override 'spark'" in first:
        return "spark: the spark group belongs to model=spark_mlp; choose it with model=spark_mlp spark=<option>"
    if cause is not None and str(cause).strip():
        return f"{first} ({str(cause).strip().splitlines()[0]})"
    return first


def describe_os_error(exc: OSError, run_dir: Path | None = None) -> str:
    """One line for a disk or permission fault, naming the path and the fix.

    A copy or move names its destination (``filename2``: where the space ran out); an error that
    names no file at all is reported against the run folder being written.
    """
    import errno

    where = exc.filename2 or exc.filename or (f"writing into {run_dir}" if run_dir else "a file")
    reason = exc.strerror or type(exc).__name__
    fixes = {
        errno.ENOSPC: "free some space or point MNISTFW_OUTPUT_DIR (or paths.log_dir) at another disk",
        errno.EDQUOT: "free some space or point MNISTFW_OUTPUT_DIR (or paths.log_dir) at another disk",
        errno.EROFS: "point MNISTFW_OUTPUT_DIR (or paths.log_dir) at a writable folder",
        errno.EACCES: "fix the folder's permissions or point MNISTFW_OUTPUT_DIR at a writable folder",
        errno.EPERM: "fix the folder's permissions or point MNISTFW_OUTPUT_DIR at a writable folder",
        errno.ENOTDIR: "a part of that path is a file, not a folder: move the file or choose another path",
        errno.EEXIST: "a file is in the way: move it or choose another path",
    }
    fix = fixes.get(exc.errno or -1, "check the path and the disk")
    return f"{where}: {reason}; {fix}"


def _to_log_files(message: str) -> None:
    """Append ``message`` to the run's log file(s) without echoing it on the console again."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            try:
                handler.emit(logging.makeLogRecord({"name": "mnistfw", "levelno": logging.ERROR,
                                                    "levelname": "ERROR", "msg": message}))
            except Exception:  # noqa: BLE001 - the disk may be the problem
                continue


def _discard_if_bare(run_dir: Path) -> None:
    """Remove a failed run's folder when it holds only Hydra's bookkeeping (``.hydra/``, logs).

    Only the primary process does: the other processes of a DDP run share rank 0's folder.
    """
    from mnistfw.app.processes import is_primary_process

    if not is_primary_process():
        return
    try:
        if not run_dir.is_dir():
            return
        here, folder = Path.cwd().resolve(), run_dir.resolve()
        if folder == here or folder in here.parents:  # hydra.run.dir=. : never remove the working folder
            return
        if any(p.name != ".hydra" and p.suffix != ".log" for p in run_dir.iterdir()):
            return
    except OSError:
        return
    import shutil

    logging.shutdown()  # close the log file before removing it
    shutil.rmtree(run_dir, ignore_errors=True)


class HydraTask:
    """The function Hydra calls with each job's config: ``task(cfg)`` runs ``run(cfg, run_dir, callbacks)``.

    :meth:`with_epoch_callback` returns a copy that also hands ``callback`` to the training
    run's ``on_epoch_end`` — the seam an Optuna sweep uses to report to its trial and prune.
    """

    def __init__(self, run: RunFunction, epoch_callbacks: Sequence[Any] = ()) -> None:
        self.run = run
        self.epoch_callbacks = tuple(epoch_callbacks)
        self.__module__ = run.__module__
        self.__name__ = getattr(run, "__name__", "task")
        self.__qualname__ = self.__name__

    def with_epoch_callback(self, callback: Any) -> HydraTask:
        return HydraTask(self.run, (*self.epoch_callbacks, callback))

    def __call__(self, cfg: Any) -> Any:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from mnistfw.app import heap
        from mnistfw.app.processes import is_primary_process

        hc = HydraConfig.get()
        run_dir = Path(hc.runtime.output_dir)
        if not is_primary_process():  # the other processes of a DDP run: warnings and errors only
            logging.getLogger("mnistfw").setLevel(logging.WARNING)
        if hc.mode == RunMode.MULTIRUN:
            heap.settle()  # a sweep chosen in the config rather than by -m: collect during its jobs
            return self.run(cfg, run_dir, self.epoch_callbacks)
        try:
            return self.run(cfg, run_dir, self.epoch_callbacks)
        except KeyboardInterrupt:
            _fail(run_dir, INTERRUPTED, 130)
        except (MnistfwError, OSError) as exc:
            _fail(run_dir, str(exc) if isinstance(exc, MnistfwError) else describe_os_error(exc, run_dir), 2)


INTERRUPTED = "interrupted (Ctrl-C); what was finished is kept (see the log for any checkpoint to resume from)"


def _fail(run_dir: Path, message: str, status: int) -> None:
    """Print ``error: message`` (also into the log), drop a bare run folder, exit with ``status``."""
    _to_log_files(f"error: {message}")
    print(f"error: {message}", file=sys.stderr)
    _discard_if_bare(run_dir)
    sys.exit(status)


#: Hydra's options that take a value: they may stand anywhere among the overrides.
_VALUE_OPTIONS = ("--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn", "--experimental-rerun")


def options_first(argv: Sequence[str]) -> list[str]:
    """``argv`` with Hydra's value-taking options moved before the overrides.

    argparse reads the overrides as one run of positional arguments, so ``a=1 --config-dir d b=2``
    would leave ``b=2`` unrecognised; moved to the front, the options may stand anywhere.
    """
    options: list[str] = []
    rest: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _VALUE_OPTIONS and i + 1 < len(args):
            options += [arg, args[i + 1]]
            i += 2
            continue
        if any(arg.startswith(f"{name}=") for name in _VALUE_OPTIONS if name.startswith("--")):
            options.append(arg)
        else:
            rest.append(arg)
        i += 1
    return options + rest


def _value_of(argv: Sequence[str], *names: str) -> list[str]:
    """Every value given for the options ``names`` (``--x v`` or ``--x=v``)."""
    found: list[str] = []
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                found.append(argv[i + 1])
            elif arg.startswith(f"{name}="):
                found.append(arg.split("=", 1)[1])
    return found


def config_groups(folders: Sequence[Path]) -> dict[str, list[str]]:
    """``{group: options}`` of the config folders (sub-folders holding .yaml files), Hydra's own excluded."""
    groups: dict[str, set[str]] = {}
    for folder in folders:
        for path in folder.rglob("*.yaml"):
            group = path.parent.relative_to(folder).as_posix()
            if group != "." and group != "hydra" and not group.startswith("hydra/"):
                groups.setdefault(group, set()).add(path.stem)
    return {group: sorted(options) for group, options in sorted(groups.items())}


def fast_help(config_name: str, argv: Sequence[str]) -> str:
    """Hydra's ``--help`` page, built from one composition and a scan of the config folders.

    Hydra's own help lists every config group, its own included, through a fresh copy of its
    config repository per group, which takes seconds; this gives the same page in a fraction of it.
    """
    import string

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf, open_dict

    from mnistfw.config.location import config_dir

    extra = [Path(p).expanduser().resolve() for p in _value_of(argv, "--config-dir", "-cd")]
    overrides = [a for a in argv if "=" in a and not a.startswith("-") and a not in _value_of(argv, "--config-dir")]
    if extra:
        overrides.append(f"hydra.searchpath=[{','.join(f'file://{p}' for p in extra)}]")
    name = (_value_of(argv, "--config-name", "-cn") or [config_name])[-1]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(name, overrides=overrides, return_hydra_config=True)
    template = str(cfg.hydra.help.template)
    with open_dict(cfg):
        del cfg["hydra"]
    groups = config_groups([config_dir(), *extra])
    return string.Template(template).safe_substitute(
        APP_CONFIG_GROUPS="\n".join(f"{group}: {', '.join(options)}" for group, options in groups.items()),
        CONFIG=OmegaConf.to_yaml(cfg),
        FLAGS_HELP="--help, --hydra-help, --cfg job|hydra|all, --config-dir DIR, --config-name NAME, -m/--multirun",
        HYDRA_CONFIG_GROUPS="(see --hydra-help)",
    )


def hydra_entry(config_name: str, run: RunFunction) -> Callable[[], Any]:
    """A console-script ``main`` running ``run(cfg, run_dir, epoch_callbacks)`` under ``@hydra.main``.

    ``HYDRA_FULL_ERROR=1`` shows Hydra's own messages and tracebacks instead of one line.
    """

    def main() -> Any:
        from mnistfw.app import heap

        if not {"-m", "--multirun"} & set(sys.argv[1:]):  # a sweep's process lives long: collect throughout
            heap.pause()
        try:
            return _main()
        finally:
            heap.freeze_for_exit()

    def _main() -> Any:
        import hydra
        from hydra.errors import HydraException

        from mnistfw.config.location import config_dir

        user_wants_full_errors = "HYDRA_FULL_ERROR" in os.environ
        sys.argv[1:] = options_first(sys.argv[1:])
        if any(arg in ("--help", "-h") for arg in sys.argv[1:]):
            try:
                print(fast_help(config_name, sys.argv[1:]), flush=True)
            except HydraException as exc:
                print(f"error: {format_hydra_error(exc)}", file=sys.stderr)
                sys.exit(2)
            except BrokenPipeError:  # e.g. `mnistfw-train --help | head`
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return None
        # Let Hydra raise instead of printing, so the message can be made one line here.
        os.environ.setdefault("HYDRA_FULL_ERROR", "1")
        task = HydraTask(run)
        decorated = hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=config_name)(task)
        try:
            return decorated()
        except KeyboardInterrupt:
            if user_wants_full_errors:
                raise
            print(f"error: {INTERRUPTED}", file=sys.stderr)
            sys.exit(130)
        except HydraException as exc:
            if user_wants_full_errors:
                raise
            print(f"error: {format_hydra_error(exc)}", file=sys.stderr)
            sys.exit(2)
        except (MnistfwError, OSError) as exc:
            if user_wants_full_errors:
                raise
            message = str(exc) if isinstance(exc, MnistfwError) else describe_os_error(exc)
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)

    return main
