"""Untrusted checkpoints: every load path refuses a code-running pickle, and a checkpoint can
only name lstmkit's own classes (and torch optimizers) - never an arbitrary ``_target_``."""

from __future__ import annotations

import ast
import pickle
import re
from pathlib import Path

import pytest
import torch
from helpers_reliability import (
    FILE_RUN,
    Payload,
    rewrite_checkpoint,
    train_tiny,
    write_malicious_checkpoint,
    write_series,
)

from lstmkit.runtime.config_checks import ConfigError
from run_helpers import compose_config

SRC = Path(__file__).resolve().parents[2] / "src" / "lstmkit"


@pytest.fixture(scope="module")
def real_ckpt(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("real")
    write_series(root / "s.csv")
    return train_tiny(
        root / "run",
        ("data=csv", f"data.path={root / 's.csv'}", "data.target=y", "data.window=4", *FILE_RUN),
    )


@pytest.fixture
def evil(tmp_path, real_ckpt) -> tuple[Path, Path]:
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.ckpt"
    write_malicious_checkpoint(path, marker, like=real_ckpt)
    return path, marker


def test_the_payload_is_live(tmp_path):
    """Plain unpickling runs it: the refusals below are real."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))  # the point of the test
    assert marker.exists()


def _load_paths(path: Path, tmp_path: Path):
    from lstmkit.cli.evaluate import evaluate
    from lstmkit.cli.predict import predict
    from lstmkit.runtime.checkpoints import check_resume, load_checkpoint, load_task

    def eval_cli():
        evaluate(compose_config(tmp_path / "eval", [f"ckpt_path={path}"], config_name="eval"))

    return {
        "load_checkpoint": lambda: load_checkpoint(path),
        "load_task": lambda: load_task(path),
        "resume check": lambda: check_resume(path, "lstmkit.tasks.SequenceRegressor"),
        "lstmkit-eval": eval_cli,
        "lstmkit-predict": lambda: predict(path, path, tmp_path / "p.csv"),
    }


@pytest.mark.parametrize(
    "name", ["load_checkpoint", "load_task", "resume check", "lstmkit-eval", "lstmkit-predict"]
)
def test_every_lstmkit_load_path_refuses_a_malicious_pickle(name, evil, tmp_path):
    path, marker = evil
    with pytest.raises(ConfigError, match=r"refused: it holds pickled code"):
        _load_paths(path, tmp_path)[name]()
    assert not marker.exists()


def test_lightning_resume_path_refuses_it_too(evil):
    """``trainer.fit(ckpt_path=...)`` as train.py calls it (weights_only=True)."""
    import lightning.pytorch as pl

    from lstmkit.data import AddingDataModule
    from lstmkit.runtime.checkpoints import safe_globals
    from lstmkit.tasks import SequenceRegressor

    path, marker = evil
    data = AddingDataModule(seq_len=5, num_train=16, num_val=16, num_test=16, batch_size=16)
    model = SequenceRegressor({"backend": "custom", "hidden_size": 4}, **data.model_kwargs())
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    with safe_globals(), pytest.raises(pickle.UnpicklingError, match="weights_only"):
        trainer.fit(model, data, ckpt_path=path, weights_only=True)
    assert not marker.exists()


def test_train_refuses_it_before_lightning_reads_it(evil, tmp_path):
    from lstmkit.cli.train import train

    path, marker = evil
    cfg = compose_config(tmp_path / "run", [f"ckpt_path={path}"])
    with pytest.raises(ConfigError, match="refused"):
        train(cfg)
    assert not marker.exists() and not (tmp_path / "run" / "checkpoints").exists()


def _set(path: tuple[str, ...], value):
    def edit(ckpt):
        node = ckpt
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value

    return edit


@pytest.mark.parametrize(
    "where, value, message",
    [
        (("lstmkit", "task"), "os.system", "only lstmkit's own classes"),
        (("lstmkit", "task"), "lstmkit.data.CSVDataModule", "not a SequenceTask"),
        (("lstmkit", "task"), "lstmkit.nope.Missing", "which is unknown"),
        (("lstmkit", "datamodule"), "subprocess.Popen", "only lstmkit's own classes"),
        (("hyper_parameters", "optimizer"), {"_target_": "os.system"}, "optimizer._target_"),
        (("hyper_parameters", "scheduler"), {"_target_": "builtins.exec"}, "scheduler._target_"),
        (("hyper_parameters", "encoder"), {"_target_": "os.system"}, "encoder._target_"),
    ],
)
def test_a_checkpoint_cannot_name_arbitrary_targets(where, value, message, real_ckpt, tmp_path):
    from lstmkit.runtime.checkpoints import datamodule_class, load_checkpoint, load_task

    path = rewrite_checkpoint(real_ckpt, tmp_path / "edited.ckpt", _set(where, value))
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_task(path)
        datamodule_class(load_checkpoint(path), path)


def test_a_real_checkpoint_loads_with_weights_only(real_ckpt):
    from lstmkit.runtime.checkpoints import load_task

    model = load_task(real_ckpt)
    assert not model.training
    torch.load(real_ckpt, weights_only=True)  # plain values and tensors only


def test_audit_no_checkpoint_load_bypasses_the_helper():
    """Static audit of ``src/lstmkit`` (its syntax tree): ``torch.load``/``pickle.load(s)`` only
    in ``checkpoints.py``; no ``load_from_checkpoint`` calls; every Lightning call given a
    ``ckpt_path=`` (``fit``, ``test``, ``validate``, ``predict``) passes ``weights_only=True``."""
    offenders = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            name = node.func.attr
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
            where = f"{path.relative_to(SRC)}:{node.lineno}"
            loads = {("torch", "load"), ("pickle", "load"), ("pickle", "loads")}
            if (owner, name) in loads and path.name != "checkpoints.py":
                offenders.append(f"{where}: {owner}.{name}")
            if name == "load_from_checkpoint":
                offenders.append(f"{where}: load_from_checkpoint")
            keywords = {k.arg: k.value for k in node.keywords}
            if name in ("fit", "test", "validate", "predict") and "ckpt_path" in keywords:
                safe = keywords.get("weights_only")
                if not (isinstance(safe, ast.Constant) and safe.value is True):
                    offenders.append(f"{where}: {name}(ckpt_path=...) without weights_only=True")
    assert not offenders, offenders
