"""Config composition of every group option, schema validation, and the CLI's one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mnistfw.app.run_spec import build_run_spec
from mnistfw.config.location import config_dir
from mnistfw.errors import ConfigError
from tests.conftest import REPO, run_cli

GROUPS = ["data", "model", "trainer", "optimizer", "scheduler", "logger", "evaluation", "visualization", "paths",
          "debug", "experiment", "hparams_search"]


def validate_run_config(cfg):  # noqa: ANN001, ANN201 - the run spec of a composed config, nothing written
    return build_run_spec(cfg, None)


def _options() -> list[tuple[str, str]]:
    return [(g, p.stem) for g in GROUPS for p in sorted((config_dir() / g).glob("*.yaml"))]


def test_config_dir_is_the_repository_configs() -> None:
    assert config_dir() == REPO / "configs"
    assert (config_dir() / "train.yaml").is_file()


def test_required_groups_exist() -> None:
    for group in ["data", "model", "trainer", "optimizer", "scheduler", "spark", "logger", "evaluation",
                  "visualization", "paths", "hydra", "experiment", "hparams_search", "debug"]:
        assert (config_dir() / group).is_dir(), group


@pytest.mark.parametrize(("group", "option"), _options(), ids=lambda v: str(v))
def test_every_option_composes_and_validates(compose, group: str, option: str) -> None:
    overrides = [f"{group}={option}"]
    if group in ("optimizer", "scheduler") and option in ("lbfgs",):
        overrides.append("model=spark_mlp")  # the one backend that implements it
    if group == "scheduler" and option == "onecycle" or group == "trainer":
        overrides.append("model=lightning_mlp")
    cfg = compose(overrides, hydra_config=group == "hparams_search")
    if group == "hparams_search":
        assert cfg.hydra.sweeper.params, "an hparams_search config must define a search space"
        OmegaConf.set_struct(cfg, False)
        cfg.pop("hydra")
    if cfg.data.source == "csv":
        cfg.data.path = "train.csv"  # csv needs a path; the file is only read at run time
    if group == "logger" and option == "wandb":
        import importlib.util

        if importlib.util.find_spec("wandb") is None:  # not installed here: one line saying how to install it
            with pytest.raises(ConfigError, match=r"logger=wandb needs the 'wandb' package; pip install 'wandb'"):
                validate_run_config(cfg)
            return
    spec = validate_run_config(cfg)
    assert spec.backend_cls.name == cfg.model.backend
    assert spec.evaluators, "at least one evaluator is configured"


@pytest.mark.parametrize("option", sorted(p.stem for p in (config_dir() / "spark").glob("*.yaml")))
def test_every_spark_option_composes_with_the_spark_model(compose, option: str) -> None:
    cfg = compose(["model=spark_mlp", f"spark={option}", "spark.master=spark://127.0.0.1:7077"])
    spec = validate_run_config(cfg)
    assert spec.sections["spark"].master == "spark://127.0.0.1:7077"


def test_schemas_hold_no_defaults_the_yaml_files_do() -> None:
    """One source of truth: a schema field with a default could disagree with its YAML file."""
    import dataclasses

    from mnistfw import registry
    from mnistfw.app.run_spec import EvaluationSettings, VisualizationSettings
    from mnistfw.backends.spark_mlp.spark_settings import DataPathConfig, SparkConfig
    from mnistfw.config import vocabulary
    from mnistfw.config.vocabulary import AugmentSettings

    schemas = [registry.load("backend", name).settings_schema for name in registry.available("backend")]
    schemas += [AugmentSettings, SparkConfig, DataPathConfig, EvaluationSettings, VisualizationSettings,
                vocabulary.TrainerSettings, vocabulary.EarlyStoppingSettings, vocabulary.CheckpointSettings]
    for schema in schemas:
        for f in dataclasses.fields(schema):
            assert f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING, (schema, f.name)
    # Optimizer and scheduler fields default to null only: "this option does not take the key".
    for schema in (vocabulary.OptimizerSettings, vocabulary.SchedulerSettings):
        assert all(f.default is None for f in dataclasses.fields(schema) if f.name != "name")


@pytest.mark.parametrize("option", sorted(p.stem for p in (config_dir() / "optimizer").glob("*.yaml")))
def test_each_optimizer_file_has_exactly_the_keys_of_its_optimizer(option: str) -> None:
    from mnistfw.config.vocabulary import OPTIMIZER_KEYS

    keys = set(OmegaConf.load(config_dir() / "optimizer" / f"{option}.yaml"))
    assert keys == {"name", *OPTIMIZER_KEYS[option]}


@pytest.mark.parametrize("option", sorted(p.stem for p in (config_dir() / "scheduler").glob("*.yaml")))
def test_each_scheduler_file_has_exactly_the_keys_of_its_schedule(option: str) -> None:
    from mnistfw.config.vocabulary import SCHEDULER_KEYS

    keys = set(OmegaConf.load(config_dir() / "scheduler" / f"{option}.yaml"))
    assert keys == {"name", *SCHEDULER_KEYS[option]}


@pytest.mark.parametrize("model", ["lightning_mlp", "numpy_net", "baseline_logreg"])
def test_one_vocabulary_reaches_every_backend_that_trains_in_epochs(compose, model: str) -> None:
    cfg = compose([f"model={model}", "trainer.max_epochs=3", "optimizer=adam", "optimizer.lr=1e-3",
                   "trainer.batch_size=128", "scheduler=step", "trainer.early_stopping.patience=2"])
    training = validate_run_config(cfg).context.training
    assert training.trainer.max_epochs == 3 and training.trainer.batch_size == 128
    assert training.optimizer.name == "adam" and training.optimizer.lr == 1e-3
    assert training.scheduler.name == "step" and training.trainer.early_stopping.patience == 2
    assert training.trainer.early_stopping.mode == "max"  # inferred from the monitored metric


def test_spark_reads_epochs_as_solver_iterations(compose) -> None:
    cfg = compose(["model=spark_mlp", "trainer.max_epochs=3"])
    spec = validate_run_config(cfg)
    assert spec.context.training.trainer.max_epochs == 3
    assert spec.context.training.optimizer.name == "lbfgs"  # the model brings its solver


def test_optimizer_name_without_its_option_is_refused(compose) -> None:
    with pytest.raises(ConfigError, match="optimizer=sgd"):
        validate_run_config(compose(["optimizer.name=sgd"]))


def test_defaults_are_the_documented_ones(compose) -> None:
    cfg = compose()
    assert cfg.model.backend == "lightning_mlp"
    assert cfg.data.name == "mnist" and cfg.data.source == "auto"
    assert cfg.data.split.val == 5000 and cfg.data.split.train is None and cfg.data.split.test is None
    assert cfg.trainer.accelerator == "cpu" and cfg.trainer.max_epochs == 20 and cfg.trainer.batch_size == 256
    assert cfg.optimizer.name == "adam" and cfg.scheduler.name == "cosine"
    assert cfg.objective == "val/accuracy"
    assert "spark" not in cfg  # the Spark session group comes with model=spark_mlp only


@pytest.mark.parametrize(
    ("overrides", "key", "fragment"),
    [
        (["optimizer.lr=0"], "optimizer.lr", "> 0"),
        (["optimizer.lr=-1e-3"], "optimizer.lr", "> 0"),
        (["trainer.max_epochs=0"], "trainer.max_epochs", ">= 1"),
        (["trainer.batch_size=0"], "trainer.batch_size", ">= 1"),
        (["trainer.limit_train_batches=1.5"], "trainer.limit_train_batches", "share in (0, 1]"),
        (["trainer.early_stopping.monitor=val/acc"], "trainer.early_stopping.monitor", "val/accuracy"),
        (["model=numpy_net", "scheduler=onecycle"], "scheduler", "does not implement"),
        (["model=numpy_net", "trainer.precision=bf16-mixed"], "trainer.precision", "32-true or 64-true"),
        (["objective=val/nosuch"], "objective", "not computed by the selected evaluators"),
        (["model.hidden=[]"], "model.hidden", "at least 1"),
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
        (["optimizer.lr=0"], "optimizer.lr: must be a number > 0"),
        (["model.hidden=[]"], "model.hidden: needs at least 1 element"),
        (["model=numpy_net", "trainer.accelerator=gpu"], "trainer.accelerator: model=numpy_net does not read this key"),
        (["model=numpy_net", "trainer=gpu"], "trainer.accelerator: model=numpy_net does not read this key"),
        (["model=baseline_logreg", "trainer.devices=2"], "trainer.devices: model=baseline_logreg does not read"),
        (["model=numpy_net", "trainer.flush_denormal=false"], "trainer.flush_denormal: model=numpy_net does not read"),
        (["model=baseline_majority", "trainer.max_epochs=2"], "does not train in epochs"),
        (["model=spark_mlp", "trainer.batch_size=128"], "trainer.batch_size: model=spark_mlp does not read"),
        (["model=numpy_net", "logger=wandb"], "logger=wandb needs the 'wandb' package; pip install 'wandb'"),
        (["model=numpy_net", "ckpt_path=x.ckpt"], "ckpt_path: model=numpy_net does not read this key"),
        (["model=numpy_net", "spark=cluster"], "spark: the spark group belongs to model=spark_mlp"),
        (["ckpt_path=missing.ckpt"], "ckpt_path: missing.ckpt does not exist"),
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


def test_data_schema_defaults_agree_with_the_default_data_option() -> None:
    """The data schema keeps defaults for keys only some sources use (csv); where configs/data/mnist.yaml
    (the default option, which the others extend) sets a key, both say the same."""
    import dataclasses

    from mnistfw.data.data_settings import DataConfig, SplitConfig

    yaml = OmegaConf.to_container(OmegaConf.load(config_dir() / "data" / "mnist.yaml"), resolve=False)
    schema = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
              for f in dataclasses.fields(DataConfig)}
    compared = 0
    for key, value in yaml.items():
        if key == "dir":  # the YAML interpolates the data folder; the schema's null means the same folder
            continue
        default = schema[key]
        if isinstance(default, SplitConfig):
            default = dataclasses.asdict(default)
        assert default == value, (key, default, value)
        compared += 1
    assert compared >= 8


def test_hydra_value_options_may_stand_anywhere_among_the_overrides() -> None:
    from mnistfw.cli.hydra_app import options_first

    argv = ["data=mnist_sample", "--config-dir", "mine", "model=x", "--config-name=train", "-m", "a=1"]
    assert options_first(argv) == ["--config-dir", "mine", "--config-name=train", "data=mnist_sample", "model=x",
                                   "-m", "a=1"]
    assert options_first(["--cfg", "job", "a=1"]) == ["--cfg", "job", "a=1"]


def test_help_lists_the_same_groups_as_hydra_and_the_users_own(tmp_path: Path) -> None:
    """mnistfw's --help (built from one composition) shows the groups Hydra's own help would, plus --config-dir's."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path

    from mnistfw.cli.hydra_app import config_groups

    hydra = Hydra.create_main_hydra2(task_name="t", config_search_path=create_config_search_path(str(config_dir())))
    expected = {g: sorted(hydra.config_loader.get_group_options(g)) for g in hydra.list_all_config_groups()
                if g != "hydra" and not g.startswith("hydra/")}
    assert config_groups([config_dir()]) == dict(sorted(expected.items()))

    mine = tmp_path / "my_configs" / "evaluation"
    mine.mkdir(parents=True)
    (mine / "accuracy_only.yaml").write_text("splits: [test]\nevaluators:\n  accuracy: {}\n")
    proc = run_cli("mnistfw-train", "--help", "evaluation=accuracy_only", "--config-dir", str(mine.parent),
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "evaluation: accuracy_only, default, minimal" in proc.stdout
    assert "evaluation:\n  splits:\n  - test\n  evaluators:\n    accuracy: {}" in proc.stdout
