"""Config composition of every group option, schema validation, and the CLI's one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mnistfw.config.location import config_dir
from mnistfw.config.schema import validate_run_config
from mnistfw.errors import ConfigError
from tests.conftest import REPO, run_cli

GROUPS = ["data", "model", "trainer", "spark", "logger", "evaluation", "visualization", "paths", "debug",
          "experiment", "hparams_search"]


def _options() -> list[tuple[str, str]]:
    return [(g, p.stem) for g in GROUPS for p in sorted((config_dir() / g).glob("*.yaml"))]


def test_config_dir_is_the_repository_configs() -> None:
    assert config_dir() == REPO / "configs"
    assert (config_dir() / "train.yaml").is_file()


def test_required_groups_exist() -> None:
    for group in ["data", "model", "trainer", "logger", "evaluation", "visualization", "paths", "hydra",
                  "experiment", "hparams_search", "debug"]:
        assert (config_dir() / group).is_dir(), group


@pytest.mark.parametrize(("group", "option"), _options(), ids=lambda v: str(v))
def test_every_option_composes_and_validates(compose, group: str, option: str) -> None:
    cfg = compose([f"{group}={option}"], hydra_config=group == "hparams_search")
    if group == "hparams_search":
        assert cfg.hydra.sweeper.params, "an hparams_search config must define a search space"
        OmegaConf.set_struct(cfg, False)
        cfg.pop("hydra")
    if cfg.data.source == "csv":
        cfg.data.path = "train.csv"  # csv needs a path; the file is only read at run time
    spec = validate_run_config(cfg)
    assert spec.backend_cls.name == cfg.model.backend
    assert spec.evaluators, "at least one evaluator is configured"


def test_defaults_are_the_documented_ones(compose) -> None:
    cfg = compose()
    assert cfg.model.backend == "lightning_mlp"
    assert cfg.data.name == "mnist" and cfg.data.source == "auto"
    assert cfg.data.split.val == 5000 and cfg.data.split.train is None and cfg.data.split.test is None
    assert cfg.trainer.accelerator == "cpu"
    assert cfg.objective == "val/accuracy"


@pytest.mark.parametrize(
    ("overrides", "key", "fragment"),
    [
        (["model.optimizer.lr=0"], "model.optimizer.lr", "> 0"),
        (["model.optimizer.lr=-1e-3"], "model.optimizer.lr", "> 0"),
        (["model.hidden=[]"], "model.hidden", "at least one"),
        (["model.activation=swish"], "model.activation", "relu"),
        (["data.split.val=1.5"], "data.split.val", "fraction in (0, 1)"),
        (["data.split.val=0.0"], "data.split.val", "fraction in (0, 1)"),
        (["+model.hiden=[3]"], "model.hiden", "allowed keys"),
        (["+evaluation.evaluators.nosuch={}"], "nosuch", "available"),
        (["objective=accuracy"], "objective", "val/accuracy"),
        (["evaluation.evaluators.f1.average=median"], "evaluation.evaluators.f1", "macro"),
        (["model.augment.rotation=-5"], "model.augment.rotation", "[0, 180] degrees"),
        (["+model.augment.flip=true"], "model.augment.flip", "rotation, scale, shift"),
    ],
)
def test_validation_errors_name_the_key(compose, overrides: list[str], key: str, fragment: str) -> None:
    with pytest.raises(Exception) as info:
        validate_run_config(compose(overrides))
    message = str(info.value)
    assert "\n" not in message
    assert key in message and fragment in message, message


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["model.hiden=[1]"], "model.hiden: unknown key; allowed here: backend, hidden"),
        (["model=lightnin"], "model=lightnin: no such option; available:"),
        (["model.optimizer.lr=0"], "model.optimizer.lr: must be > 0"),
        (["model.hidden=[]"], "model.hidden: needs at least one layer size"),
        (["data.split.val=1.5"], "data.split.val: must be a count"),
        (["data.split.test=-0.2"], "data.split.test: must be a count"),
    ],
)
def test_cli_stops_with_one_line_error(tmp_path: Path, args: list[str], expected: str) -> None:
    proc = run_cli("mnistfw-train", *args, f"paths.log_dir={tmp_path}/out", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert expected in lines[0]
    assert not list(tmp_path.rglob("metrics.json")) and not list(tmp_path.rglob("*.ckpt"))


def test_help_and_cfg_do_not_import_heavy_packages(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from mnistfw.cli.train import main\n"
        "for argv in (['mnistfw-train', '--cfg', 'job'], ['mnistfw-train', '--help']):\n"
        "    sys.argv = argv\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('torch', 'pytorch_lightning', 'pyspark', 'optuna', 'matplotlib') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "model:\n  backend: lightning_mlp" in proc.stdout
    assert "== Configuration groups ==" in proc.stdout
    assert "HEAVY []" in proc.stdout


def test_schema_rejects_unknown_top_level_key(compose) -> None:
    cfg = compose(["+foo=1"])
    with pytest.raises(ConfigError, match="foo: unknown top-level key"):
        validate_run_config(cfg)
