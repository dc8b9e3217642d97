"""The ``frontend`` option of the tasks: wiring, padding, refusals, training, checkpoints, CLI."""

from __future__ import annotations

import functools
import json

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lstmkit.cli.evaluate import evaluate
from lstmkit.cli.train import train
from lstmkit.nn import ConvFrontEnd
from lstmkit.runtime.config_checks import ConfigError
from lstmkit.tasks import AutoregressiveForecaster, SequenceClassifier, SequenceRegressor, pool

FRONT = {"channels": 6, "kernel_size": 5, "stride": 2, "num_layers": 2}


@pytest.fixture(autouse=True)
def _single_thread():
    """Tiny tensors: one intra-op thread is faster than two, and a convolution does not stall
    (~100x) when other processes compete for the cores. Restored after the test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("backend", ["custom", "cudnn"])
@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_the_encoder_reads_the_front_end_outputs_and_lengths(backend, pooling):
    torch.manual_seed(0)
    model = SequenceClassifier(
        {"backend": backend, "hidden_size": 5}, num_classes=3, input_size=2, frontend=FRONT,
        pooling=pooling,
    ).eval()  # fmt: skip
    assert isinstance(model.frontend, ConvFrontEnd) and model.encoder.input_size == 6
    x, lengths = torch.randn(3, 40, 2), torch.tensor([40, 23, 3])
    with torch.no_grad():
        feats = model.features(x, lengths)
        y, short = model.frontend(x, lengths)  # by hand: front end, encoder, pooling
        output, (h_n, _) = model.encoder(y, lengths=short)
        expected = pool(output, h_n, short, pooling, 1)
    assert short.tolist() == [10, 6, 1]  # 40 -> 20 -> 10; 23 -> 12 -> 6; 3 -> 2 -> 1
    torch.testing.assert_close(feats, expected)
    assert model(x, lengths).shape == (3, 3)


def test_a_sequence_is_classified_the_same_alone_and_in_a_padded_batch():
    torch.manual_seed(0)
    model = SequenceClassifier(
        {"backend": "custom", "hidden_size": 5}, num_classes=3, input_size=2, frontend=FRONT,
        pooling="mean",
    ).eval()  # fmt: skip
    lengths = torch.tensor([50, 21, 7])
    x = torch.randn(3, 60, 2)
    x[1, 21:] = 1e3  # padding garbage must not reach the valid outputs
    with torch.no_grad():
        batch = model(x, lengths)
        for i, n in enumerate(lengths.tolist()):
            alone = model(x[i : i + 1, :n], lengths[i : i + 1])
            torch.testing.assert_close(batch[i : i + 1], alone, rtol=1e-5, atol=1e-6)


def test_token_inputs_and_regressors_take_a_front_end():
    torch.manual_seed(0)
    tokens = SequenceClassifier(
        {"backend": "custom", "hidden_size": 4}, num_classes=2, vocab_size=9, embedding_dim=3,
        frontend={"channels": 5, "num_layers": 1},
    )  # fmt: skip
    assert tokens.frontend.input_size == 3 and tokens.encoder.input_size == 5
    assert tokens(torch.randint(0, 9, (2, 30)), torch.tensor([30, 12])).shape == (2, 2)
    regressor = SequenceRegressor(
        {"backend": "custom", "hidden_size": 4}, input_size=3, output_size=2, horizon=4,
        target_channels=[0, 1], residual=True, relative_inputs=False, frontend=FRONT,
    )  # fmt: skip
    x, lengths = torch.randn(2, 25, 3), torch.tensor([25, 9])
    out = regressor(x, lengths)
    assert out.shape == (2, 4, 2)
    # residual: the last observed values are read from the raw inputs, not the front end's
    last = regressor.last_values(x, lengths)
    head = regressor.head(regressor.features(x, lengths)).view(2, 4, 2)
    torch.testing.assert_close(out, head + last.unsqueeze(1))
    quantile = SequenceRegressor(
        {"backend": "custom", "hidden_size": 4}, input_size=3, loss="quantile",
        quantiles=[0.1, 0.5, 0.9], frontend=FRONT,
    )  # fmt: skip
    assert quantile(x, lengths).shape == (2, 1, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"per_step": True}, r"per_step=True needs one encoder step per input step; set "
                             r"per_step=false, or frontend=null"),
        ({"tbptt_steps": 10}, r"tbptt_steps=10 needs one encoder step .* set tbptt_steps=null"),
        ({"stateful": True}, r"stateful=True needs one encoder step .* set stateful=false"),
    ],
)  # fmt: skip
def test_per_step_tasks_refuse_a_front_end(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SequenceClassifier({"backend": "custom"}, num_classes=2, input_size=1, frontend=FRONT,
                           **kwargs)  # fmt: skip


def test_the_autoregressive_forecaster_refuses_a_front_end():
    with pytest.raises(ValueError, match=r"frontend=.*feeds each forecast back .*model=regressor"):
        AutoregressiveForecaster(
            {"backend": "custom"}, input_size=2, horizon=3, target_channels=[0], frontend=FRONT
        )


@pytest.mark.parametrize(
    ("frontend", "error", "match"),
    [
        ({"channels": 0}, ValueError, r"^frontend\.channels=0: must be an integer >= 1"),
        ({"strides": 2}, ValueError, r"^frontend\.strides=2: not a front-end option"),
        ("conv", TypeError, r"^frontend='conv': must be a mapping"),
    ],
)
def test_bad_front_end_options_are_named(frontend, error, match):
    with pytest.raises(error, match=match):
        SequenceClassifier({"backend": "custom"}, num_classes=2, input_size=1, frontend=frontend)


def _long_sequences(n: int = 64, steps: int = 200) -> TensorDataset:
    """Two classes of long noisy sequences: class 1 holds a burst of a 10-step sine somewhere
    in the sequence; lengths vary from 120 to 200 steps."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, steps, 1, generator=g) * 0.3
    y = torch.arange(n) % 2
    lengths = torch.randint(120, steps + 1, (n,), generator=g)
    burst = torch.sin(torch.linspace(0, 2 * torch.pi, 10)) * 2
    for i in range(n):
        start = int(torch.randint(0, int(lengths[i]) - 10, (1,), generator=g))
        if y[i] == 1:
            x[i, start : start + 10, 0] += burst
        x[i, int(lengths[i]) :] = 0
    return TensorDataset(x, y, lengths)


def test_a_classifier_with_a_front_end_trains_and_round_trips_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    data = _long_sequences()
    model = SequenceClassifier(
        {"backend": "custom", "hidden_size": 16}, num_classes=2, input_size=1,
        frontend={"channels": 16, "kernel_size": 5, "stride": 2, "num_layers": 2},
        pooling="max", optimizer=functools.partial(torch.optim.Adam, lr=1e-2),
    )  # fmt: skip
    x, y, lengths = data.tensors
    with torch.no_grad():
        before = model.compute_loss(model(x, lengths), y, lengths)
    trainer = pl.Trainer(
        max_epochs=8, logger=False, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, default_root_dir=tmp_path, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(model, DataLoader(data, batch_size=16, shuffle=True))
    model.eval()
    with torch.no_grad():
        after = model.compute_loss(model(x, lengths), y, lengths)
    assert after < 0.7 * before  # it learns (the encoder reads 50, not 200, steps)

    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)  # plain values and tensors only
    assert checkpoint["hyper_parameters"]["frontend"] == {
        "channels": 16, "kernel_size": 5, "stride": 2, "num_layers": 2
    }  # fmt: skip
    restored = SequenceClassifier.load_from_checkpoint(path).eval()
    assert isinstance(restored.frontend, ConvFrontEnd)
    with torch.no_grad():
        torch.testing.assert_close(restored(x, lengths), model(x, lengths))


@pytest.mark.slow  # end to end through the configs; make test runs it
def test_model_frontend_conv_trains_and_evaluates_from_the_command_configs(cfg_factory, tmp_path):
    """``model/frontend=conv`` through ``train(cfg)``, then ``lstmkit-eval`` on its checkpoint."""
    cfg = cfg_factory("data=waveform", "model=classifier", "model/frontend=conv",
                      "model.frontend.channels=8", "trainer.max_epochs=1")  # fmt: skip
    assert cfg.model.frontend.stride == 2
    metrics = train(cfg)
    run = tmp_path / "run"
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["test"]["test/acc"] == pytest.approx(metrics["test/acc"])
    eval_cfg = cfg_factory(f"ckpt_path={run}/checkpoints/best.ckpt", name="eval", subdir="eval")
    assert evaluate(eval_cfg)["test/acc"] == pytest.approx(metrics["test/acc"])


def test_model_frontend_conv_with_per_step_labels_is_a_config_error(cfg_factory):
    cfg = cfg_factory("data=copy", "model=classifier", "model/frontend=conv")
    with pytest.raises(ConfigError, match=r"^model\.frontend=.*per_step=True"):
        train(cfg)


@pytest.mark.parametrize("kwargs", [{"per_step": True}, {"tbptt_steps": 10}, {"stateful": True}])
def test_an_auto_front_end_is_left_out_where_the_task_needs_every_step(kwargs):
    model = SequenceClassifier({"backend": "custom", "hidden_size": 4}, num_classes=2, input_size=1,
                               frontend={**FRONT, "auto": True}, **kwargs)  # fmt: skip
    assert model.frontend is None
    whole = SequenceClassifier({"backend": "custom", "hidden_size": 4}, num_classes=2, input_size=1,
                               frontend={**FRONT, "auto": True})  # fmt: skip
    assert isinstance(whole.frontend, ConvFrontEnd) and whole.frontend.output_size == 6
    with pytest.raises(ValueError, match=r"frontend\.auto='yes': must be true or false"):
        SequenceClassifier({"backend": "custom", "hidden_size": 4}, num_classes=2, input_size=1,
                           frontend={**FRONT, "auto": "yes"})  # fmt: skip


@pytest.mark.slow  # end to end through the configs; make test runs it
def test_the_classifier_config_uses_the_front_end_where_it_can(cfg_factory):
    """model=classifier defaults to model/frontend=auto: a front end for whole-sequence labels,
    none (and no error) for per-step labels."""
    whole = cfg_factory("data=waveform", "model=classifier", "trainer.max_epochs=1", subdir="w")
    assert whole.model.frontend.auto is True
    train(whole)
    per_step = cfg_factory("data=copy", "model=classifier", "trainer.max_epochs=1", subdir="c")
    assert "test/acc" in train(per_step)
