"""Tasks: pooling, heads, losses with padding, scaling, plain hyperparameters, checkpoints."""

from __future__ import annotations

import functools

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from lstmkit.nn import build_lstm
from lstmkit.tasks import Seq2SeqLSTM, SequenceClassifier, SequenceRegressor, pool
from lstmkit.tasks.classification import IGNORE_INDEX

BACKENDS = ["custom", "cudnn"]
PLAIN = (int, float, str, bool, type(None))


def _assert_plain(value, where="hparams"):
    if isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, str), where
            _assert_plain(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _assert_plain(v, f"{where}[{i}]")
    else:
        assert isinstance(value, PLAIN), f"{where} is {type(value).__name__}"


def test_pooling_over_valid_steps():
    output = torch.tensor([[[1.0], [3.0], [0.0]], [[2.0], [4.0], [6.0]]])  # (B=2, T=3, H=1)
    h_n = torch.tensor([[[3.0], [6.0]]])  # (1, B, 1)
    lengths = torch.tensor([2, 3])
    torch.testing.assert_close(pool(output, h_n, lengths, "last", 1), torch.tensor([[3.0], [6.0]]))
    torch.testing.assert_close(pool(output, h_n, lengths, "mean", 1), torch.tensor([[2.0], [4.0]]))
    neg = -output  # max must ignore the padded zero of the first sequence
    torch.testing.assert_close(pool(neg, h_n, lengths, "max", 1), torch.tensor([[-1.0], [-2.0]]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_last_pooling_of_a_bidirectional_encoder_matches_its_outputs(backend):
    torch.manual_seed(0)
    model = SequenceClassifier(
        {"backend": backend, "hidden_size": 5, "bidirectional": True, "num_layers": 2},
        num_classes=3,
        input_size=2,
    )
    x, lengths = torch.randn(3, 6, 2), torch.tensor([6, 4, 2])
    output, _ = model.encoder(x, lengths=lengths)  # (B, T, 2H)
    feats = model.features(x, lengths)  # (B, 2H)
    forward_last = output[torch.arange(3), lengths - 1, :5]
    torch.testing.assert_close(feats[:, :5], forward_last)
    torch.testing.assert_close(feats[:, 5:], output[:, 0, 5:])  # reverse direction ends at 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_step_loss_ignores_padding(backend):
    torch.manual_seed(0)
    model = SequenceClassifier(
        {"backend": backend, "hidden_size": 8}, num_classes=4, vocab_size=6, embedding_dim=3,
        per_step=True,
    )  # fmt: skip
    x = torch.randint(0, 6, (2, 5))
    y = torch.randint(0, 4, (2, 5))
    lengths = torch.tensor([5, 3])
    logits = model(x, lengths)
    assert logits.shape == (2, 5, 4)
    loss = model.compute_loss(logits, y, lengths)
    y_changed = y.clone()
    y_changed[1, 3:] = (y[1, 3:] + 1) % 4  # labels past the length must not matter
    torch.testing.assert_close(model.compute_loss(logits, y_changed, lengths), loss)
    y_ignored = y.clone()
    y_ignored[0, 0] = IGNORE_INDEX
    preds, target = model.metric_inputs(logits, y_ignored, lengths)
    assert preds.shape == (7, 4) and target.shape == (7,)


def test_class_weights_and_label_smoothing_reach_the_loss():
    torch.manual_seed(0)
    kw = {"encoder": {"backend": "cudnn", "hidden_size": 4}, "num_classes": 3, "input_size": 1}
    logits, y = torch.randn(8, 3), torch.randint(0, 3, (8,))
    plain = SequenceClassifier(**kw).compute_loss(logits, y, None)
    weighted = SequenceClassifier(**kw, class_weights=[1.0, 5.0, 0.1]).compute_loss(logits, y, None)
    smooth = SequenceClassifier(**kw, label_smoothing=0.2).compute_loss(logits, y, None)
    expected = torch.nn.functional.cross_entropy(logits, y, weight=torch.tensor([1.0, 5.0, 0.1]))
    torch.testing.assert_close(weighted, expected)
    assert not torch.isclose(plain, smooth)
    with pytest.raises(ValueError, match="class_weights"):
        SequenceClassifier(**kw, class_weights=[1.0, 2.0])


def test_regressor_predicts_in_original_units():
    torch.manual_seed(0)
    model = SequenceRegressor(
        {"backend": "cudnn", "hidden_size": 4}, input_size=1, output_size=2, horizon=3,
        target_mean=[10.0, -5.0], target_std=[2.0, 0.5],
    )  # fmt: skip
    x, lengths = torch.randn(4, 7, 1), torch.tensor([7, 7, 3, 1])
    scaled = model(x, lengths)
    assert scaled.shape == (4, 3, 2)
    out = model.predict_step((x, scaled, lengths))
    torch.testing.assert_close(
        out["pred"], scaled * torch.tensor([2.0, 0.5]) + torch.tensor([10.0, -5.0])
    )
    torch.testing.assert_close(out["target"], out["pred"])


@pytest.mark.parametrize("loss", ["mse", "mae", "huber"])
def test_regression_losses(loss):
    model = SequenceRegressor({"backend": "cudnn", "hidden_size": 4}, input_size=1, loss=loss)
    out, y = torch.zeros(5, 1), torch.full((5, 1), 3.0)
    expected = {"mse": 9.0, "mae": 3.0, "huber": 2.5}[loss]
    assert model.compute_loss(out, y, None).item() == pytest.approx(expected)


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_pooling_choices_and_mlp_head(pooling):
    model = SequenceRegressor(
        {"backend": "cudnn", "hidden_size": 6}, input_size=2, pooling=pooling, head_hidden_size=5,
        dropout=0.1,
    )  # fmt: skip
    assert model(torch.randn(3, 4, 2), torch.tensor([4, 2, 1])).shape == (3, 1)


def test_hyperparameters_are_plain_values_even_from_partials():
    model = SequenceClassifier(
        functools.partial(build_lstm, backend="cudnn", hidden_size=4),
        num_classes=2,
        input_size=3,
        optimizer=functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9),
        scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=2),
    )
    hparams = dict(model.hparams)
    _assert_plain(hparams)
    assert hparams["encoder"] == {"backend": "cudnn", "hidden_size": 4}
    assert hparams["optimizer"]["_target_"].endswith("SGD") and hparams["optimizer"]["lr"] == 0.1
    opt = model.configure_optimizers()
    assert isinstance(opt["optimizer"], torch.optim.SGD)
    assert isinstance(opt["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"encoder": torch.nn.LSTM(1, 2)}, TypeError, "modules are not accepted"),
        ({"encoder": {"backend": "cudnn", "hidden_size": 4, "input_size": 3}}, ValueError,
         "encoder.input_size"),
        ({"encoder": {"hidden_size": 4}, "pooling": "first"}, ValueError, "pooling='first'"),
        ({"encoder": {"hidden_size": 4}, "input_size": None}, ValueError, "input_size=None"),
        ({"encoder": {"backend": "nope", "hidden_size": 4}}, ValueError, "nope"),
    ],
)  # fmt: skip
def test_bad_task_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        SequenceRegressor(**{"input_size": 1, **kwargs})


@pytest.mark.parametrize("backend", BACKENDS)
def test_load_from_checkpoint_alone_rebuilds_the_model(tmp_path, backend):
    torch.manual_seed(0)
    model = SequenceClassifier(
        {"backend": backend, "hidden_size": 6}, num_classes=3, vocab_size=7, embedding_dim=4,
        class_weights=[1.0, 2.0, 3.0], optimizer=functools.partial(torch.optim.Adam, lr=0.01),
    )  # fmt: skip
    x = torch.randint(0, 7, (8, 5))
    y = torch.randint(0, 3, (8,))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y, torch.full((8,), 5)), batch_size=4
    )
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(model, loader, loader)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)  # nothing but tensors and plain values
    assert checkpoint["lstmkit"]["task"] == "lstmkit.tasks.classification.SequenceClassifier"
    restored = SequenceClassifier.load_from_checkpoint(path)
    model.eval()
    restored.eval()
    torch.testing.assert_close(restored(x), model(x))
    torch.testing.assert_close(restored.class_weights, torch.tensor([1.0, 2.0, 3.0]))


def test_epoch_metrics_equal_metrics_computed_by_hand_over_the_split():
    """Metrics are logged once per epoch from the accumulated states: over a validation pass
    (fixed weights) they equal accuracy and MAE computed by hand over all its batches."""
    torch.manual_seed(0)
    x = torch.randn(40, 7, 2)
    labels = torch.randint(0, 3, (40,))
    lengths = torch.randint(1, 8, (40,))
    batches = [(x[i : i + 16], labels[i : i + 16], lengths[i : i + 16]) for i in (0, 16, 32)]
    model = SequenceClassifier({"backend": "custom", "hidden_size": 4}, num_classes=3, input_size=2)
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    for _ in range(2):  # a second pass must not mix in the first one's states
        trainer.validate(model, dataloaders=DataLoader(batches, batch_size=None), verbose=False)
    with torch.no_grad():
        preds = torch.cat([model(xb, lb).argmax(-1) for xb, _, lb in batches])
    expected = (preds == labels).float().mean()
    torch.testing.assert_close(trainer.callback_metrics["val/acc"], expected)

    regressor = SequenceRegressor({"backend": "cudnn", "hidden_size": 4}, input_size=2)
    targets = torch.randn(40, 1)
    reg_batches = [
        (xb, targets[i : i + 16], lb) for i, (xb, _, lb) in zip((0, 16, 32), batches, strict=True)
    ]
    trainer.test(regressor, dataloaders=DataLoader(reg_batches, batch_size=None), verbose=False)
    with torch.no_grad():
        out = torch.cat([regressor(xb, lb) for xb, _, lb in reg_batches])
    torch.testing.assert_close(trainer.callback_metrics["test/mae"], (out - targets).abs().mean())


def test_seq2seq_forecaster_takes_log_targets_from_time_series_data():
    """Time-series data hands every regression task ``log_target`` and ``target_channels``;
    the seq2seq forecaster turns predictions back with exp (hand-computed)."""
    model = Seq2SeqLSTM(
        {"hidden_size": 4}, input_size=1, output_size=1, horizon=2, target_mean=[1.0],
        target_std=[2.0], log_target=True, target_channels=[0],
    )  # fmt: skip
    standardised = torch.tensor([[[0.5], [-1.0]]])
    expected = torch.exp(standardised * 2.0 + 1.0)
    torch.testing.assert_close(model.inverse_transform(standardised), expected)


def test_switches_are_true_or_false_in_the_constructors_too():
    """The constructors refuse a switch given as a number or a string (the config check's rule,
    in one place each: ``lstmkit._validation.check_bool``); NumPy's bools pass."""
    import numpy as np

    from lstmkit.data import AddingDataModule
    from lstmkit.tasks import Seq2SeqLSTM, SequenceClassifier

    with pytest.raises(TypeError, match=r"^variable_length=1: must be true or false"):
        AddingDataModule(variable_length=1)
    assert AddingDataModule(variable_length=np.bool_(True)).variable_length is True
    encoder = {"backend": "custom", "hidden_size": 4}
    with pytest.raises(TypeError, match=r"^stateful='false': must be true or false"):
        SequenceClassifier(encoder, num_classes=2, input_size=1, stateful="false")
    with pytest.raises(TypeError, match=r"^compile=0: must be true or false"):
        SequenceClassifier(encoder, num_classes=2, input_size=1, compile=0)
    with pytest.raises(TypeError, match=r"^reverse_input=1: must be true or false"):
        Seq2SeqLSTM(encoder, vocab_size=5, num_classes=5, reverse_input=1)
