"""A catalogue of bad inputs: each stops before training, with one clear line, touching nothing.

Every case goes through the same functions as the command line (``check_argv``, ``train``,
``evaluate``, ``predict.main`` under ``run_cli``) in-process, so the file stays fast; a few run
as real subprocesses at the end. For each command case we check: a non-zero exit status, one
line on stderr that names the key, file, column or argument, no traceback, no training (no
checkpoint or metrics written) and every file the user had unchanged (size, mtime, sha256).
Python API cases (tensors and constructors) must raise ``ValueError``/``TypeError`` whose
message names the argument.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_reliability import (
    FILE_RUN,
    SYNTH_RUN,
    rewrite_checkpoint,
    run_in_process,
    snapshot,
    train_tiny,
    write_malicious_checkpoint,
    write_series,
)

from run_helpers import compose_config, run_command, sampled_grid


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    kind: str  # "argv" | "train" | "eval" | "predict"
    args: tuple[str, ...]
    expect: str  # a substring of the one error line (after formatting with the files)


CSV = ("data=csv", "data.path={user}/s.csv", "data.target=y", "data.window=4", *FILE_RUN)
CASES = [
    # ---- command arguments, checked before Hydra composes
    Case("unknown data name", "argv", ("data=foo",), "data='foo' is not a config"),
    Case("unknown encoder config", "argv", ("model/encoder=gru",), "model/encoder='gru'"),
    Case("unknown model config", "argv", ("model=transformer",), "model='transformer'"),
    Case("run dir holding a run", "argv", ("hydra.run.dir={user}/old_run",), "hydra.run.dir="),
    # ---- config overrides
    Case("unknown backend", "train", ("model.encoder.backend=lstm",), "model.encoder.backend="),
    Case("negative seq_len", "train", ("data.seq_len=-5",), "data.seq_len=-5"),
    Case("zero hidden_size", "train", ("model.encoder.hidden_size=0",), "hidden_size=0"),
    Case("negative num_layers", "train", ("model.encoder.num_layers=-1",), "num_layers=-1"),
    Case("zero batch_size", "train", ("data.batch_size=0",), "data.batch_size=0"),
    Case("zero num_train", "train", ("data.num_train=0",), "data.num_train=0"),
    Case("proj_size >= hidden_size", "train", ("model.encoder.proj_size=8",), "proj_size"),
    Case(
        "variant the backend cannot run",
        "train",
        ("model/encoder=cudnn", "+model.encoder.layer_norm=true"),
        "layer_norm",
    ),
    Case("dropout >= 1", "train", ("model.dropout=1.5",), "model.dropout=1.5"),
    Case("encoder dropout > 1", "train", ("model.encoder.dropout=1.5",), "encoder.dropout=1.5"),
    Case("unknown pooling", "train", ("model.pooling=median",), "model.pooling='median'"),
    Case("unknown loss", "train", ("model.loss=l3",), "model.loss='l3'"),
    Case("zero num_threads", "train", ("num_threads=0",), "num_threads=0"),
    Case("negative seed", "train", ("seed=-1",), "seed=-1"),
    Case("classifier on regression data", "train", ("model=classifier",), "model=classifier"),
    Case("unknown accelerator", "train", ("trainer.accelerator=tpu",), "trainer: "),
    Case(
        "unknown gradient clipping",
        "train",
        ("+trainer.gradient_clip_algorithm=l3",),
        "trainer: `gradient_clip_algorithm` l3",
    ),
    Case("resume from a missing file", "train", ("ckpt_path={user}/nope.ckpt",), "nope.ckpt"),
    Case("resume from another task", "train", ("ckpt_path={cls_ckpt}",), "SequenceClassifier"),
    Case("resume from a corrupt file", "train", ("ckpt_path={user}/corrupt.ckpt",), "corrupt"),
    Case("resume from a hostile pickle", "train", ("ckpt_path={user}/evil.ckpt",), "refused"),
    Case(
        "output folder under a file",
        "train",
        ("paths.output_dir={user}/s.csv/run",),
        "paths.output_dir=",
    ),
    Case("output folder holding a run", "train", ("paths.output_dir={user}/old_run",), "holds"),
    # ---- data files
    Case("missing data file", "train", (*CSV, "data.path={user}/nope.csv"), "nope.csv"),
    Case("empty data file", "train", (*CSV, "data.path={user}/empty.csv"), "empty.csv"),
    Case("header-only file", "train", (*CSV, "data.path={user}/header.csv"), "header.csv"),
    Case("corrupt parquet", "train", (*CSV, "data.path={user}/bad.parquet"), "bad.parquet"),
    Case("missing column", "train", (*CSV, "data.target=price"), "'price'"),
    Case("non-numeric column", "train", (*CSV, "data.features=[word]"), "'word'"),
    Case("NaN with missing=error", "train", (*CSV, "data.path={user}/nan.csv"), "nan.csv"),
    Case("Inf with missing=error", "train", (*CSV, "data.path={user}/inf.csv"), "inf.csv"),
    Case("window longer than series", "train", (*CSV, "data.window=500"), "window"),
    Case("unknown missing policy", "train", (*CSV, "data.missing=maybe"), "missing"),
    Case(
        "zero-length sequence",
        "train",
        ("data=sequences", "model=classifier", "data.path={user}/zero.npz", *FILE_RUN),
        "zero.npz",
    ),
    Case(
        "corrupt npz",
        "train",
        ("data=sequences", "model=classifier", "data.path={user}/bad.npz", *FILE_RUN),
        "bad.npz",
    ),
    Case(
        "text column missing",
        "train",
        ("data=text", "model=classifier", "data.path={user}/s.csv", *FILE_RUN),
        "'text'",
    ),
    # ---- lstmkit-eval
    Case("eval without ckpt_path", "eval", (), "ckpt_path is required"),
    Case("eval corrupt checkpoint", "eval", ("ckpt_path={user}/corrupt.ckpt",), "corrupt.ckpt"),
    Case("eval hostile pickle", "eval", ("ckpt_path={user}/evil.ckpt",), "refused"),
    Case("eval foreign task class", "eval", ("ckpt_path={user}/foreign.ckpt",), "os.system"),
    # ---- lstmkit-predict
    Case("predict unknown argument", "predict", ("foo=1",), "'foo=1' is not an argument"),
    Case("predict zero batch_size", "predict", ("batch_size=0",), "batch_size=0: must be"),
    Case("predict bad overwrite", "predict", ("overwrite=maybe",), "overwrite='maybe'"),
    Case("predict without input", "predict", ("ckpt_path={reg_ckpt}",), "input is required"),
    Case(
        "predict missing input file",
        "predict",
        ("ckpt_path={reg_ckpt}", "input={user}/nope.csv"),
        "nope.csv",
    ),
    Case(
        "predict empty input file",
        "predict",
        ("ckpt_path={reg_ckpt}", "input={user}/empty.csv", "output={tmp}/p.csv"),
        "empty.csv",
    ),
    Case(
        "predict with a synthetic-data checkpoint",
        "predict",
        ("ckpt_path={cls_ckpt}", "input={user}/s.csv", "output={tmp}/p.csv"),
        "reads no files",
    ),
    Case(
        "predict output exists",
        "predict",
        ("ckpt_path={reg_ckpt}", "input={user}/s.csv", "output={user}/s.csv"),
        "overwrite=true",
    ),
    Case(
        "predict output folder under a file",
        "predict",
        ("ckpt_path={reg_ckpt}", "input={user}/s.csv", "output={user}/s.csv/p.csv"),
        "output=",
    ),
    Case(
        "predict hostile pickle",
        "predict",
        ("ckpt_path={user}/evil.ckpt", "input={user}/s.csv", "output={tmp}/p.csv"),
        "refused",
    ),
    Case(
        "predict checkpoint naming os.system as datamodule",
        "predict",
        ("ckpt_path={user}/foreign.ckpt", "input={user}/s.csv", "output={tmp}/p.csv"),
        "only lstmkit's own classes",
    ),
    Case(
        "predict checkpoint naming os.system as optimizer",
        "predict",
        ("ckpt_path={user}/evil_optimizer.ckpt", "input={user}/s.csv", "output={tmp}/p.csv"),
        "optimizer._target_='os.system'",
    ),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A regressor trained on a CSV file and a classifier trained on synthetic waveforms."""
    root = tmp_path_factory.mktemp("trained")
    write_series(root / "s.csv")
    reg = train_tiny(
        root / "reg",
        ("data=csv", f"data.path={root / 's.csv'}", "data.target=y", "data.window=4", *FILE_RUN),
    )
    cls = train_tiny(root / "cls", ("data=waveform", "model=classifier", *SYNTH_RUN))
    return {"reg_ckpt": reg, "cls_ckpt": cls, "root": root}


@pytest.fixture
def user(tmp_path, trained):
    """The user's files: good and bad data, bad checkpoints, a finished run folder."""
    d = tmp_path / "user"
    d.mkdir()
    write_series(d / "s.csv", word=["w"] * 80)
    (d / "empty.csv").write_text("")
    (d / "header.csv").write_text("time,y,x1\n")
    (d / "bad.parquet").write_bytes(b"PAR1 not really parquet")
    (d / "bad.npz").write_bytes(b"PK\x03\x04 truncated zip")
    (d / "corrupt.ckpt").write_bytes(b"\x80\x02garbage that is no pickle")
    y = np.sin(np.arange(80) / 5.0)
    y_nan, y_inf = y.copy(), y.copy()
    y_nan[17], y_inf[23] = np.nan, np.inf
    write_series(d / "nan.csv", y=y_nan)
    write_series(d / "inf.csv", y=y_inf)
    seqs = [np.ones((5, 2), np.float32), np.zeros((0, 2), np.float32), np.ones((4, 2), np.float32)]
    x = np.empty(3, dtype=object)
    x[:] = seqs
    np.savez(d / "zero.npz", x=x, y=np.array([0, 1, 0]))
    write_malicious_checkpoint(d / "evil.ckpt", tmp_path / "PWNED", like=trained["reg_ckpt"])

    def foreign(ckpt):
        ckpt["lstmkit"] = {"task": "os.system", "datamodule": "os.system"}

    def evil_optimizer(ckpt):
        ckpt["hyper_parameters"]["optimizer"] = {"_target_": "os.system", "_partial_": True}

    rewrite_checkpoint(trained["reg_ckpt"], d / "foreign.ckpt", foreign)
    rewrite_checkpoint(trained["reg_ckpt"], d / "evil_optimizer.ckpt", evil_optimizer)
    old = d / "old_run"
    (old / "checkpoints").mkdir(parents=True)
    (old / "config.yaml").write_text("seed: 1\n")
    (old / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    return d


def _format(args, user, trained, tmp_path):
    names = {"user": user, "tmp": tmp_path, **{k: str(v) for k, v in trained.items()}}
    return [a.format(**names) for a in args]


def _run_case(case: Case, args: list[str], run_dir: Path, capsys) -> tuple[int, str]:
    from lstmkit.runtime._config_dir import config_groups
    from lstmkit.runtime.config_checks import check_argv
    from lstmkit.runtime.guards import check_argv_run_dir

    if case.kind == "argv":

        def fn():
            check_argv(args, config_groups())
            check_argv_run_dir(args)

        return run_in_process("lstmkit-train", fn, capsys)
    if case.kind == "train":
        from lstmkit.cli.train import train

        shrink = not any(a.startswith("data=") for a in args)
        overrides = [*SYNTH_RUN, *args] if shrink else args
        cfg = compose_config(run_dir, overrides, shrink=False)
        for arg in args:  # paths.output_dir overrides win over the tmp run folder
            if arg.startswith("paths.output_dir="):
                cfg.paths.output_dir = arg.split("=", 1)[1]
        return run_in_process("lstmkit-train", lambda: train(cfg), capsys)
    if case.kind == "eval":
        from omegaconf import open_dict

        from lstmkit.cli.evaluate import evaluate

        cfg = compose_config(run_dir, args, config_name="eval")
        with open_dict(cfg):
            cfg.trainer.enable_progress_bar = False
        return run_in_process("lstmkit-eval", lambda: evaluate(cfg), capsys)
    if case.kind == "predict":
        from lstmkit.cli.predict import main

        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        return exit_info.value.code, capsys.readouterr().err
    raise AssertionError(case.kind)


@pytest.mark.parametrize("case", sampled_grid(CASES, [c.id for c in CASES], every=6))
def test_bad_input_stops_before_training_and_touches_nothing(case, user, trained, tmp_path, capsys):
    args = _format(case.args, user, trained, tmp_path)
    before = snapshot(user)
    trained_before = snapshot(trained["root"])
    run_dir = tmp_path / "run"

    status, err = _run_case(case, args, run_dir, capsys)

    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one line, no traceback wall
    assert "Traceback" not in err
    assert lines[0].startswith(("lstmkit-train: error:", "lstmkit-eval: error:", "lstmkit-pre"))
    assert case.expect.format(user=user) in lines[0], lines[0]
    assert snapshot(user) == before  # nothing the user had was modified
    assert snapshot(trained["root"]) == trained_before
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "metrics.csv").exists()
    assert not (tmp_path / "PWNED").exists()  # no payload ran
    assert not (tmp_path / "p.csv").exists()


# ---------------------------------------------------------------------- Python API
def _api_cases():
    from lstmkit.nn import CustomLSTM, build_lstm
    from lstmkit.tasks import SequenceClassifier

    lstm = CustomLSTM(3, 4, batch_first=True)
    x = torch.randn(2, 5, 3)
    clf = SequenceClassifier({"backend": "custom", "hidden_size": 4}, input_size=3, num_classes=3)
    lengths = torch.tensor([5, 5])
    return {
        "unknown backend": (lambda: build_lstm("gru", input_size=3, hidden_size=4), "'gru'"),
        "zero hidden_size": (
            lambda: build_lstm("custom", input_size=3, hidden_size=0),
            "hidden_size",
        ),
        "negative num_layers": (
            lambda: build_lstm("cudnn", input_size=3, hidden_size=4, num_layers=-1),
            "num_layers",
        ),
        "proj_size >= hidden_size": (
            lambda: build_lstm("cudnn", input_size=3, hidden_size=4, proj_size=4),
            "proj_size",
        ),
        "variant the backend cannot run": (
            lambda: build_lstm("cudnn", input_size=3, hidden_size=4, layer_norm=True),
            "layer_norm",
        ),
        "wrong feature size": (lambda: lstm(torch.randn(2, 5, 4)), "input_size=3"),
        "zero length": (lambda: lstm(x, lengths=torch.tensor([0, 5])), "lengths"),
        "length above T": (lambda: lstm(x, lengths=torch.tensor([6, 5])), "lengths"),
        "zero time steps": (lambda: lstm(torch.randn(2, 0, 3)), "zero time steps"),
        "wrong h_0 shape": (
            lambda: lstm(x, (torch.zeros(1, 3, 4), torch.zeros(1, 3, 4))),
            "h_0",
        ),
        "integer input": (lambda: lstm(x.long()), "dtype"),
        "labels out of range": (
            lambda: clf.training_step((x, torch.tensor([0, 7]), lengths), 0),
            "labels",
        ),
        "negative label": (
            lambda: clf.training_step((x, torch.tensor([-2, 0]), lengths), 0),
            "labels",
        ),
        "module as encoder": (
            lambda: SequenceClassifier(torch.nn.LSTM(3, 4), input_size=3, num_classes=3),
            "encoder",
        ),
        "one class": (
            lambda: SequenceClassifier({"hidden_size": 4}, input_size=3, num_classes=1),
            "num_classes",
        ),
    }


API_IDS = list(_api_cases())


@pytest.mark.parametrize("name", API_IDS)
def test_bad_tensor_or_argument_to_the_python_api(name):
    fn, expect = _api_cases()[name]
    with pytest.raises((ValueError, TypeError)) as info:
        fn()
    message = str(info.value)
    assert expect in message and len(message.splitlines()) <= 2, message


# ---------------------------------------------------------------------- real commands
SUBPROCESS_CASES = [
    (["lstmkit-train", "data=foo"], "lstmkit-train: error: data='foo' is not a config"),
    (
        ["lstmkit-train", "model.encoder.backend=lstm", "paths.log_dir={tmp}/logs"],
        "lstmkit-train: error: model.encoder.backend='lstm' is not allowed",
    ),
    (
        ["lstmkit-eval", "ckpt_path={user}/evil.ckpt", "paths.log_dir={tmp}/logs"],
        "lstmkit-eval: error: ckpt_path=",
    ),
    (
        ["lstmkit-predict", "ckpt_path={user}/corrupt.ckpt", "input={user}/s.csv"],
        "lstmkit-predict: error: ckpt_path=",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("argv, expect", SUBPROCESS_CASES, ids=lambda v: str(v)[:40])
def test_real_command_exits_2_with_one_line(argv, expect, user, trained, tmp_path):
    before = snapshot(user)
    proc = run_command(_format(argv, user, trained, tmp_path), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith(expect), proc.stderr
    assert snapshot(user) == before
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.slow
def test_hydra_full_error_shows_the_traceback(user, tmp_path):
    proc = run_command(
        ["lstmkit-predict", f"ckpt_path={user}/corrupt.ckpt", f"input={user}/s.csv"],
        cwd=tmp_path,
        env={"HYDRA_FULL_ERROR": "1"},
    )
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "ConfigError" in proc.stderr


def test_catalogue_size():
    """The issue asks for at least 30 bad inputs; the README quotes this number."""
    assert len(CASES) + len(API_IDS) + len(SUBPROCESS_CASES) >= 30
