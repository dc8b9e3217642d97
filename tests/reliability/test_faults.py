"""Faults during training, on real ``lstmkit-train`` processes: SIGKILL, SIGTERM, NaN.

- SIGKILL during epoch 3, resume from ``last.ckpt``: the final weights, optimizer state and
  metrics equal an uninterrupted run with the same seed (CPU).
- SIGTERM (SLURM preemption): ``checkpoints/preempted.ckpt`` is written, the process exits 0,
  and the run resumes from it.
- A checkpoint every N steps (``callbacks=[default,step_checkpoint]``) and what a mid-epoch
  resume does: the step count continues, the rest of the epoch is drawn afresh (not
  bit-identical; Lightning warns).
- A NaN loss stops the run with the step and likely causes named; ``last.ckpt``/``best.ckpt``
  written before stay byte-identical.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers_reliability import snapshot

from run_helpers import VENV_BIN

HERE = Path(__file__).resolve().parent
#: A tiny adding-problem run: 8 batches per epoch, 4 epochs, no early stop, no plots.
RUN = (
    "data.seq_len=20",
    "data.num_train=128",
    "data.num_val=64",
    "data.num_test=64",
    "data.batch_size=16",
    "model.encoder.hidden_size=8",
    "trainer=cpu",
    "trainer.max_epochs=4",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
    "~callbacks.rich_progress_bar",
    "~callbacks.model_summary",
    "~callbacks.early_stopping",
    "plots=false",
)


def _env() -> dict[str, str]:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def _train(run_dir: Path, *extra: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [str(VENV_BIN / "lstmkit-train"), *RUN, f"hydra.run.dir={run_dir}", *extra]
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=240)


def _start(run_dir: Path, *extra: str, cwd: Path) -> subprocess.Popen:
    cmd = [str(VENV_BIN / "lstmkit-train"), *RUN, f"hydra.run.dir={run_dir}", *extra]
    return subprocess.Popen(
        cmd, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"run ended before {path.name}: {proc.communicate()[1][-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {path}")
        time.sleep(0.05)


def _wait_hook(epoch: int, batch: int, marker: Path) -> tuple[str, ...]:
    return (
        "+callbacks.fault._target_=fault_callbacks.WaitAtBatch",
        f"+callbacks.fault.epoch={epoch}",
        f"+callbacks.fault.batch={batch}",
        f"+callbacks.fault.marker={marker}",
    )


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_same_training_state(a: Path, b: Path) -> None:
    ca, cb = _ckpt(a), _ckpt(b)
    assert ca["global_step"] == cb["global_step"] and ca["epoch"] == cb["epoch"]
    torch.testing.assert_close(ca["state_dict"], cb["state_dict"], rtol=0, atol=0)
    torch.testing.assert_close(
        ca["optimizer_states"][0]["state"], cb["optimizer_states"][0]["state"], rtol=0, atol=0
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("uninterrupted")
    proc = _train(root / "run", cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "run"


@pytest.mark.slow
def test_sigkill_in_epoch_3_then_resume_equals_uninterrupted(uninterrupted, tmp_path):
    killed, marker = tmp_path / "killed", tmp_path / "at_epoch_3"
    proc = _start(killed, *_wait_hook(2, 3, marker), cwd=tmp_path)  # epoch 3 = index 2
    _wait_for(marker, proc)
    last = killed / "checkpoints" / "last.ckpt"
    saved = snapshot(killed / "checkpoints")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert _ckpt(last)["epoch"] == 1  # the end of epoch 2 survived the kill, untouched
    assert snapshot(killed / "checkpoints") == saved

    resumed = tmp_path / "resumed"
    done = _train(resumed, f"ckpt_path={last}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_same_training_state(
        uninterrupted / "checkpoints/last.ckpt", resumed / "checkpoints/last.ckpt"
    )
    a, b = _metrics(uninterrupted), _metrics(resumed)
    assert a["fit"] == b["fit"]  # last epoch's train and validation metrics, exactly
    assert a["test"] == b["test"]
    assert snapshot(killed / "checkpoints") == saved  # resuming wrote into the new folder only


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_exits_cleanly_and_resumes(uninterrupted, tmp_path):
    preempted, marker = tmp_path / "preempted", tmp_path / "at_epoch_2"
    proc = _start(preempted, *_wait_hook(1, 2, marker), cwd=tmp_path)
    _wait_for(marker, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    ckpt_path = preempted / "checkpoints" / "preempted.ckpt"
    assert ckpt_path.is_file() and "Preempted (SIGTERM)" in out + err
    ckpt = _ckpt(ckpt_path)
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 8 + 3  # after batch 2 of epoch 2
    assert not (preempted / "metrics.json").exists()  # stopped: no test, no final metrics

    resumed = tmp_path / "resumed"
    done = _train(resumed, f"ckpt_path={ckpt_path}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "not resumable" not in done.stderr  # the loader skips the batches already trained on
    _assert_same_training_state(
        uninterrupted / "checkpoints/last.ckpt", resumed / "checkpoints/last.ckpt"
    )
    assert _metrics(uninterrupted)["fit"] == _metrics(resumed)["fit"]
    assert _metrics(uninterrupted)["test"] == _metrics(resumed)["test"]


@pytest.mark.slow
def test_sigterm_at_an_epoch_end_resumes_exactly(uninterrupted, tmp_path):
    """Preempted on an epoch's last batch, the checkpoint is an end-of-epoch one: exact."""
    preempted, marker = tmp_path / "preempted", tmp_path / "at_end"
    proc = _start(preempted, *_wait_hook(1, 7, marker), cwd=tmp_path)
    _wait_for(marker, proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 0
    ckpt_path = preempted / "checkpoints" / "preempted.ckpt"
    done = _train(tmp_path / "resumed", f"ckpt_path={ckpt_path}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_same_training_state(
        uninterrupted / "checkpoints/last.ckpt", tmp_path / "resumed/checkpoints/last.ckpt"
    )


@pytest.mark.slow
def test_checkpoint_every_n_steps_and_mid_epoch_resume(uninterrupted, tmp_path):
    steps = (
        "callbacks=[default,step_checkpoint]",
        "callbacks.step_checkpoint.every_n_train_steps=5",
    )
    run = tmp_path / "steps"
    proc = _train(run, *steps, "trainer.max_epochs=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    step_ckpt = run / "checkpoints" / "step-15.ckpt"  # only the newest is kept
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "best.ckpt",
        "last.ckpt",
        "step-15.ckpt",
    ]
    assert _ckpt(step_ckpt)["global_step"] == 15  # batch 7 of 8 in epoch 2: mid-epoch

    resumed = tmp_path / "resumed"
    done = _train(resumed, "trainer.max_epochs=2", f"ckpt_path={step_ckpt}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "not resumable" not in done.stderr
    # the run that wrote step-15.ckpt went on to the end: the resumed one matches it exactly
    _assert_same_training_state(run / "checkpoints/last.ckpt", resumed / "checkpoints/last.ckpt")
    val = {k: v for k, v in _metrics(run)["fit"].items() if k.startswith("val/")}
    assert val == {k: v for k, v in _metrics(resumed)["fit"].items() if k.startswith("val/")}
    assert _metrics(run)["test"] == _metrics(resumed)["test"]
    # (the resumed epoch's train/*_epoch averages cover only the batches run after the resume)

    # without the loader that recorded the position, such a checkpoint is refused clearly
    plain = _train(
        tmp_path / "plain", "callbacks.epoch_seed.seed=null", f"ckpt_path={step_ckpt}", cwd=tmp_path
    )
    assert plain.returncode == 2 and "saved mid-epoch" in plain.stderr, plain.stderr[-3000:]


@pytest.mark.slow
def test_mid_epoch_resume_without_a_resumable_loader_continues_the_step_count(tmp_path):
    """With ``callbacks.epoch_seed.seed=null`` the loader is a plain one: Lightning resumes the
    step count, draws the rest of the epoch afresh, and warns."""
    steps = (
        "callbacks=[default,step_checkpoint]",
        "callbacks.step_checkpoint.every_n_train_steps=5",
        "callbacks.epoch_seed.seed=null",
        "trainer.max_epochs=2",
    )
    run = tmp_path / "steps"
    assert _train(run, *steps, cwd=tmp_path).returncode == 0
    step_ckpt = run / "checkpoints" / "step-15.ckpt"
    done = _train(tmp_path / "resumed", *steps, f"ckpt_path={step_ckpt}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "dataloader is not resumable" in done.stderr  # Lightning's own warning
    final = _ckpt(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert (final["epoch"], final["global_step"]) == (1, 16)  # the step count continues


@pytest.mark.slow
def test_nan_loss_stops_with_step_and_cause_and_keeps_checkpoints(tmp_path):
    run = tmp_path / "nan"
    poison = ("+callbacks.poison._target_=fault_callbacks.PoisonBatch", "+callbacks.poison.step=19")
    first = _start(run, *poison, cwd=tmp_path)
    # the checkpoints of epochs 1 and 2 exist before step 19 (epoch 3, batch 3)
    _, err = first.communicate(timeout=240)
    assert first.returncode == 3, err[-3000:]
    line = err.strip().splitlines()[-1]
    assert line.startswith("lstmkit-train: error: training stopped at step 19 (epoch 2, batch 3)")
    assert "non-finite training loss" in line and "learning rate" in line and "data" in line
    assert "kept the last good checkpoints" in line
    last, best = run / "checkpoints" / "last.ckpt", run / "checkpoints" / "best.ckpt"
    assert _ckpt(last)["epoch"] == 1 and _ckpt(last)["global_step"] == 16
    for ckpt in (last, best):
        assert all(torch.isfinite(v).all() for v in _ckpt(ckpt)["state_dict"].values())
    assert "Traceback" not in err


def test_nan_guard_stops_before_the_optimizer_applies_a_bad_gradient():
    """In-process: a NaN gradient never reaches the weights."""
    import lightning.pytorch as pl

    from lstmkit._errors import TrainingDivergedError
    from lstmkit.data import AddingDataModule
    from lstmkit.runtime.callbacks import NonFiniteGuard
    from lstmkit.tasks import SequenceRegressor

    class NanGrad(pl.Callback):
        def on_after_backward(self, trainer, pl_module):
            if trainer.global_step == 2:
                next(pl_module.parameters()).grad.view(-1)[0] = torch.inf

    data = AddingDataModule(seq_len=10, num_train=64, num_val=16, num_test=16, batch_size=16)
    model = SequenceRegressor({"backend": "custom", "hidden_size": 4}, **data.model_kwargs())
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[NanGrad(), NonFiniteGuard()],
    )
    with pytest.raises(TrainingDivergedError, match=r"step 2 .*non-finite gradient of encoder"):
        trainer.fit(model, data)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_trainer_config_clips_gradients_by_default():
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(HERE.parents[1] / "configs" / "trainer" / "default.yaml")
    assert cfg.gradient_clip_val == 1.0


if sys.platform == "win32":  # pragma: no cover
    pytestmark = pytest.mark.skip("POSIX signals")
