"""Seq2SeqLSTM and the addition datamodule: data, decoding, teacher forcing, learning."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from lstmkit.data import AdditionDataModule
from lstmkit.data.addition import EOS, PAD, decode_tokens, encode_sum
from lstmkit.runtime.runs import torch_threads
from lstmkit.tasks import Seq2SeqLSTM
from lstmkit.tasks.seq2seq import ExactMatch, reverse_within


def _trainer(epochs: int) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=1.0,
    )


def test_addition_encodes_characters():
    x, y, lengths = encode_sum(torch.tensor([535, 0, 99, 7]), torch.tensor([61, 0, 1, 993]), 3)
    texts = [decode_tokens(x[k, : lengths[k]]) for k in range(4)]
    sums = [decode_tokens(y[k].clamp_min(0)) for k in range(4)]
    assert texts == ["535+61", "0+0", "99+1", "7+993"]
    assert sums == ["596", "0", "100", "1000"]
    assert lengths.tolist() == [6, 3, 4, 5]
    assert (x[1, 3:] == PAD).all() and y[1].tolist() == [3, EOS, -100, -100, -100]


def test_addition_datamodule_sums_are_right():
    dm = AdditionDataModule(num_digits=3, num_train=64, num_val=8, num_test=256)
    x, y, lengths = next(iter(dm.test_dataloader()))
    for k in range(len(x)):
        a, b = decode_tokens(x[k, : lengths[k]]).split("+")
        assert decode_tokens(y[k].clamp_min(0)) == str(int(a) + int(b))
    kwargs = dm.model_kwargs()
    assert kwargs["vocab_size"] == kwargs["num_classes"] == 14
    assert kwargs["max_output_len"] == 5


def test_reverse_within_keeps_padding_at_the_end():
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    assert reverse_within(x, torch.tensor([3, 2])).tolist() == [[3, 2, 1, 0], [5, 4, 0, 0]]


def test_exact_match_ignores_positions_past_the_end():
    metric = ExactMatch()
    target = torch.tensor([[5, 2, -100], [5, 6, 2]])
    metric.update(torch.tensor([[5, 2, 9], [5, 7, 2]]), target)
    assert metric.compute().item() == 0.5


def _model(**kwargs) -> Seq2SeqLSTM:
    defaults = dict(vocab_size=14, embedding_dim=8, num_classes=14, max_output_len=6)
    return Seq2SeqLSTM({"backend": "cudnn", "hidden_size": 16}, **{**defaults, **kwargs}).eval()


@pytest.mark.parametrize(("in_len", "out_len"), [(3, 12), (11, 2)], ids=["longer", "shorter"])
def test_greedy_decoding_any_output_length(in_len, out_len):
    """Outputs longer and shorter than the inputs: greedy decoding runs for ``max_len`` steps,
    and each step equals the teacher-forced pass fed with the decoder's own outputs."""
    torch.manual_seed(0)
    model = _model(eos_index=9)  # an id the untrained model may or may not emit
    x = torch.randint(3, 14, (4, in_len))
    lengths = torch.tensor([in_len, in_len - 1, 2, 1])
    tokens = model.generate(x, lengths, max_len=out_len)
    assert tokens.shape == (4, out_len)
    with torch.no_grad():
        logits = model(x, lengths, target=tokens)  # (4, out_len, V)
    ended = torch.zeros(4, dtype=torch.bool)
    for t in range(out_len):
        expected = torch.where(ended, PAD, logits[:, t].argmax(-1))
        assert torch.equal(tokens[:, t], expected)
        ended |= logits[:, t].argmax(-1) == model.hparams.eos_index


def test_decoding_stops_at_eos_and_pads():
    model = _model()
    with torch.no_grad():  # make <eos> the only possible output
        model.head.weight.zero_()
        model.head.bias.fill_(-10.0)
        model.head.bias[EOS] = 10.0
    tokens = model.generate(torch.randint(3, 14, (2, 5)), torch.tensor([5, 3]), max_len=7)
    assert tokens.tolist() == [[EOS] + [PAD] * 6] * 2


def test_teacher_forcing_schedule_and_mixed_backends():
    model = Seq2SeqLSTM(
        {"backend": "cudnn", "hidden_size": 16},
        decoder={"backend": "custom"},
        vocab_size=14,
        num_classes=14,
        teacher_forcing=1.0,
        teacher_forcing_final=0.2,
        teacher_forcing_epochs=4,
    )
    assert type(model.encoder).__name__ == "CudnnLSTM"
    assert type(model.decoder).__name__ == "CustomLSTM"
    assert [round(model.teacher_forcing_ratio(e), 3) for e in (0, 2, 4, 9)] == [1.0, 0.6, 0.2, 0.2]
    x, y = torch.randint(3, 14, (3, 5)), torch.randint(3, 14, (3, 4))
    out = model(x, torch.tensor([5, 4, 2]), target=y, teacher_forcing=0.5)
    assert out.shape == (3, 4, 14)
    out.sum().backward()  # the scheduled (step-by-step) path trains
    assert model.encoder.weight_ih_l0.grad is not None


def test_decoder_must_share_the_state_size():
    with pytest.raises(ValueError, match=r"decoder\.hidden_size=8"):
        Seq2SeqLSTM({"hidden_size": 16}, decoder={"hidden_size": 8}, vocab_size=5, num_classes=5)
    with pytest.raises(ValueError, match="exactly one"):
        Seq2SeqLSTM({"hidden_size": 16}, vocab_size=5)


def test_real_valued_outputs():
    model = Seq2SeqLSTM(
        {"backend": "custom", "hidden_size": 8}, input_size=2, output_size=3, horizon=4
    )
    x, y = torch.randn(5, 9, 2), torch.randn(5, 4, 3)
    assert model(x, target=y, teacher_forcing=0.0).shape == (5, 4, 3)
    assert model.generate(x).shape == (5, 4, 3)
    loss = model.compute_loss(model(x, target=y), y, None)
    assert torch.isfinite(loss)


@pytest.mark.slow
def test_learns_two_digit_addition():
    """8 epochs on 8192 sums of two 2-digit numbers (~10 s on a 2-core CPU).

    Chance is far below: the per-position-mode baseline matches 0% of the sums exactly (and
    47% of the tokens); a random 1-3 digit answer would be right ~0.5% of the time. We ask
    for >= 80% exact matches with greedy decoding on 512 unseen test sums (a run reaches ~95%).
    """
    pl.seed_everything(0, verbose=False)
    dm = AdditionDataModule(num_digits=2, num_train=8192, num_val=256, num_test=512)
    model = Seq2SeqLSTM(
        {"backend": "cudnn", "hidden_size": 128},
        embedding_dim=16,
        reverse_input=True,
        optimizer={"_target_": "torch.optim.Adam", "lr": 5e-3},
        **dm.model_kwargs(),
    )
    with torch_threads(1):
        _trainer(8).fit(model, dm)
    metrics = _trainer(1).test(model, dm, verbose=False)[0]
    baseline = dm.trivial_baseline()
    assert baseline["test/exact_match"] < 0.05
    print(f"2-digit addition: {metrics} vs baseline {baseline}")
    assert metrics["test/exact_match"] >= 0.8, metrics
    assert metrics["test/token_acc"] >= 0.9, metrics


def test_trains_through_lstmkit_train(cfg_factory):
    from lstmkit.cli.train import train

    cfg = cfg_factory(
        "experiment=addition_seq2seq",
        "data.num_digits=2",
        "model.encoder.hidden_size=16",
        "trainer.max_epochs=1",
        "model.teacher_forcing_epochs=1",
    )
    result = train(cfg)
    assert {"test/exact_match", "test/token_acc", "test/loss"} <= set(result)
    assert "baseline/exact_match" in result
    assert (Path(cfg.paths.output_dir) / "sequences.png").is_file()


def test_real_valued_seq2seq_through_lstmkit_train(cfg_factory):
    """Forecasting as sequence to sequence: the decoder emits the ``horizon`` future values."""
    from lstmkit.cli.train import train

    cfg = cfg_factory("data=sine", "data.horizon=3", "model=seq2seq")
    result = train(cfg)
    assert {"test/mse", "test/mae", "baseline/mse"} <= set(result)
    assert (Path(cfg.paths.output_dir) / "predictions.png").is_file()
