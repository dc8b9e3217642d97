"""Every config group composes and instantiates; the commands start fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from lstmkit.runtime._config_dir import CONFIG_DIR, config_groups, group_options
from run_helpers import (
    HEAVY_MODULES,
    REPO,
    VENV_BIN,
    imported_modules,
    run_command,
    sampled_grid,
)


def test_config_dir_is_the_repository_one_in_a_checkout():
    assert CONFIG_DIR in (str(REPO / "configs"), str(REPO / "src" / "lstmkit" / "configs"))
    for group in ("data", "model", "model/encoder", "trainer", "callbacks", "logger",
                  "experiment", "paths", "hydra"):  # fmt: skip
        assert group in config_groups()


#: Data configs with required keys: placeholders (their constructors read no file).
DATA_REQUIRED = {
    "csv": ("data.path=series.csv", "data.target=y"),
    "sequences": ("data.path=sequences.npz",),
    "text": ("data.path=texts.csv",),
    "table": ("data.path=panel.csv", "data.id=id", "data.target=y"),
}


MODEL_ENCODER_PAIRS = [
    (m, e) for m in group_options("model") for e in group_options("model/encoder")
]


@pytest.mark.parametrize(
    "name", sampled_grid(group_options("data"), group_options("data"), every=2)
)
def test_every_data_config_instantiates(cfg_factory, name):
    cfg = cfg_factory(f"data={name}", *DATA_REQUIRED.get(name, ()), shrink=False)
    datamodule = instantiate(cfg.data)
    assert type(datamodule).__name__.endswith("DataModule")


@pytest.mark.parametrize(
    "pair", sampled_grid(MODEL_ENCODER_PAIRS, [f"{m}-{e}" for m, e in MODEL_ENCODER_PAIRS], every=2)
)
def test_every_model_and_encoder_config_instantiates(cfg_factory, pair):
    model, encoder = pair
    cfg = cfg_factory(f"model={model}", f"model/encoder={encoder}")
    sizes = {"input_size": 3}
    sizes.update({"num_classes": 4} if model == "classifier" else {"output_size": 2, "horizon": 3})
    lengths = torch.tensor([5, 2])
    if model == "autoregressive":  # window 2 + horizon 3, the targets in channels 0 and 1
        sizes["target_channels"], lengths = [0, 1], torch.tensor([5, 5])
    task = instantiate(cfg.model, **sizes)
    out = task(torch.randn(2, 5, 3), lengths)
    assert out.shape == ((2, 4) if model == "classifier" else (2, 3, 2))


@pytest.mark.parametrize("frontend", group_options("model/frontend"))
@pytest.mark.parametrize("model", ["classifier", "regressor"])
def test_every_frontend_config_instantiates(cfg_factory, model, frontend):
    cfg = cfg_factory(f"model={model}", f"model/frontend={frontend}")
    sizes = {"num_classes": 4} if model == "classifier" else {"output_size": 2, "horizon": 3}
    task = instantiate(cfg.model, input_size=3, **sizes)
    assert task.encoder.input_size == task.frontend.channels == cfg.model.frontend.channels
    out = task(torch.randn(2, 50, 3), torch.tensor([50, 9]))
    assert out.shape == ((2, 4) if model == "classifier" else (2, 3, 2))


@pytest.mark.parametrize("optimizer", group_options("model/optimizer"))
@pytest.mark.parametrize("scheduler", group_options("model/scheduler"))
def test_every_optimizer_and_scheduler_config_instantiates(cfg_factory, optimizer, scheduler):
    cfg = cfg_factory(f"model/optimizer={optimizer}", f"model/scheduler={scheduler}")
    task = instantiate(cfg.model, input_size=2, output_size=1)
    configured = task.configure_optimizers()
    assert isinstance(configured["optimizer"], torch.optim.Optimizer)
    assert configured["lr_scheduler"]["monitor"] == "val/loss"


@pytest.mark.parametrize("name", group_options("trainer"))
def test_every_trainer_config_instantiates(cfg_factory, name):
    if name == "gpu" and not torch.cuda.is_available():
        pytest.skip("trainer=gpu needs a CUDA device")
    cfg = cfg_factory(f"trainer={name}", shrink=False)
    trainer = instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
    assert trainer.max_epochs >= 1


@pytest.mark.parametrize("name", group_options("callbacks"))
def test_every_callbacks_config_instantiates(cfg_factory, name):
    cfg = cfg_factory(f"callbacks={name}", shrink=False)
    for node in (cfg.callbacks or {}).values():
        assert instantiate(node) is not None


@pytest.mark.parametrize("name", group_options("logger"))
def test_every_logger_config_instantiates(cfg_factory, name):
    if name == "tensorboard":
        pytest.importorskip("tensorboard", reason="logger=tensorboard needs tensorboard")
    cfg = cfg_factory(f"logger={name}", shrink=False)
    for node in cfg.logger.values():
        assert instantiate(node) is not None


@pytest.mark.parametrize(
    "name", sampled_grid(group_options("experiment"), group_options("experiment"), every=3)
)
def test_every_experiment_composes_and_builds(cfg_factory, name):
    cfg = cfg_factory(f"experiment={name}", shrink=False)
    datamodule = instantiate(cfg.data)
    task = instantiate(cfg.model, **datamodule.model_kwargs())
    assert task.hparams.encoder["hidden_size"] >= 1


def test_seed_experiments_match_the_explainer(cfg_factory):
    counting = cfg_factory("experiment=seed_counting", shrink=False)
    assert counting.model.encoder.hidden_size == 128 and counting.data.window == 3
    assert counting.model.loss == "mse" and counting.model.optimizer._target_ == "torch.optim.Adam"
    classifier = cfg_factory("experiment=seed_classifier", shrink=False)
    assert classifier.model.encoder.hidden_size == 128
    assert classifier.data.batch_size == 32 and classifier.trainer.max_epochs == 10


def test_eval_config_composes(cfg_factory):
    cfg = cfg_factory("ckpt_path=x.ckpt", name="eval", shrink=False)
    assert cfg.ckpt_path == "x.ckpt" and cfg.get("data") is None


@pytest.mark.parametrize("flag", ["--help", "--cfg job"])
@pytest.mark.parametrize("command", ["lstmkit-train", "lstmkit-eval"])
def test_help_and_cfg_job_import_nothing_heavy(command, flag):
    """``--help`` and ``--cfg job`` answer from the configs alone: no torch, Lightning,
    torchmetrics, pandas or matplotlib is imported (their latency: scripts/benchmark_latency.py)."""
    result, imported = imported_modules([str(VENV_BIN / command), *flag.split()], REPO)
    assert result.returncode == 0, result.stderr  # eval's `???` is fine for printing
    assert "lstmkit" in imported  # the check sees the command's imports
    # a bare --help reads the config files (yaml) without Hydra; --cfg job composes with it
    assert ("hydra" in imported) == (flag == "--cfg job"), flag
    assert not imported & set(HEAVY_MODULES), sorted(imported & set(HEAVY_MODULES))


def _help_sections(text: str) -> tuple[str, str]:
    """A help text's header (before the groups) and its ``== Configuration groups ==`` block."""
    header, rest = text.split("== Configuration groups ==", 1)
    return header, rest.split("== Config ==", 1)[0]


@pytest.mark.parametrize(
    ("command", "config_name"), [("lstmkit-train", "train"), ("lstmkit-inspect", "inspect")]
)
def test_bare_help_prints_the_groups_and_the_primary_config_without_hydra(command, config_name):
    """``<command> --help`` answers from the files: the header and the groups read as Hydra's
    own help (the reference: the same command with an override, which goes to Hydra), then
    every setting of ``configs/<name>.yaml``; neither Hydra nor OmegaConf is imported."""
    import yaml

    result, imported = imported_modules([str(VENV_BIN / command), "--help"], REPO)
    assert result.returncode == 0, result.stderr
    assert "lstmkit" in imported and not imported & {"hydra", "omegaconf", *HEAVY_MODULES}
    hydra_help = run_command([str(VENV_BIN / command), "seed=0", "--help"], REPO)
    assert hydra_help.returncode == 0, hydra_help.stderr
    assert _help_sections(result.stdout) == _help_sections(hydra_help.stdout)
    assert "data: adding, addition" in result.stdout  # a group and its options
    config = yaml.safe_load((Path(CONFIG_DIR) / f"{config_name}.yaml").read_text())
    settings = result.stdout.split("== Config ==", 1)[1]
    for key in set(config) - {"defaults", "hydra"}:
        assert f"\n{key}:" in settings, key
    assert "\ndefaults:" not in settings and "\nhydra:" not in settings
    assert f"{command} --cfg job" in settings
    assert "Use --hydra-help to view Hydra specific help" in result.stdout


def test_ensemble_help_has_its_own_header():
    """``lstmkit-ensemble`` shares ``train.yaml``; its help names the ensemble command."""
    result = run_command([sys.executable, "-m", "lstmkit.cli.ensemble", "--help"], REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("lstmkit-ensemble: ")
    assert "lstmkit-ensemble --cfg job" in result.stdout and "\nckpt_path: null" in result.stdout


def test_quick_help_settings_keep_their_comments():
    from lstmkit.runtime.quick_help import default_choices, own_settings

    text = (
        "# the file's introduction\n\n"
        "defaults:\n- _self_\n- data: adding\n  # a note in the list\n- experiment: null\n\n"
        "task_name: train\n# the seed\nseed: 42\nsamples: [0, 1]\nnested:\n  a: 1\n\n"
        "hydra:\n  help:\n    header: |\n      x\n"
    )
    assert own_settings(text) == (
        "task_name: train\n# the seed\nseed: 42\nsamples: [0, 1]\nnested:\n  a: 1"
    )
    assert default_choices(
        ["_self_", {"data": "adding"}, {"experiment": None}, {"override hydra/launcher": "x"},
         {"callbacks": ["a", "b"]}]
    ) == ["data=adding", "callbacks=[a,b]"]  # fmt: skip
    # an unusual layout (a flow mapping at the top) falls back to yaml's own dump
    assert own_settings("{seed: 1, hydra: {a: 2}}") == "seed: 1"


def test_entry_points_import_nothing_heavy():
    code = (
        "import sys, lstmkit.cli.train, lstmkit.cli.evaluate\n"
        "heavy = [m for m in ('torch', 'lightning', 'torchmetrics', 'matplotlib') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_python_dash_m_runs_the_command():
    result = subprocess.run(
        [sys.executable, "-m", "lstmkit.cli.train", "--cfg", "job"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "_target_: lstmkit.data.AddingDataModule" in result.stdout


def test_a_missing_config_is_one_line():
    """Hydra's MissingConfigException (a ConfigCompositionException) ends as one line."""
    from lstmkit.runtime.config_checks import ConfigError
    from lstmkit.runtime.override_checks import compose_checked

    with pytest.raises(ConfigError) as err:
        compose_checked("train", ["+experiment=nope"], None)
    assert str(err.value) == "In 'train': Could not find 'experiment/nope'"
    with pytest.raises(ConfigError) as err:
        compose_checked("nope", [], None)
    assert str(err.value).startswith("Cannot find primary config 'nope'")
    assert "\n" not in str(err.value)


def test_the_encoder_constructor_is_the_one_rule_for_its_values():
    """torch's rule for ``dropout`` is [0, 1]: the checks accept 1.0 as the constructor does,
    and refuse 1.5 with the constructor's own message, naming the key."""
    from lstmkit.nn import build_lstm
    from lstmkit.runtime.config_checks import ConfigError
    from lstmkit.runtime.override_checks import precheck

    build_lstm("custom", input_size=1, hidden_size=4, num_layers=2, dropout=1.0)
    assert precheck(
        "lstmkit-train", "train", ["model.encoder.num_layers=2", "model.encoder.dropout=1.0"]
    )
    with pytest.raises(ConfigError) as err:
        precheck("lstmkit-train", "train", ["model.encoder.dropout=1.5"])
    assert str(err.value).startswith(
        "model.encoder.dropout=1.5 is not allowed: dropout should be a number in range [0, 1]"
    )


def test_a_bad_encoder_size_is_refused_by_the_cores_rule_before_torch_loads():
    result, imported = imported_modules(
        [str(VENV_BIN / "lstmkit-train"), "model.encoder.hidden_size=0"], REPO
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "lstmkit-train: error: model.encoder.hidden_size=0 is not allowed: hidden_size must be "
        "greater than zero, got 0"
    )
    assert "torch" not in imported
