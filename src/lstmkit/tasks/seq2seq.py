"""Sequence to sequence: an LSTM encoder, an LSTM decoder, outputs of their own length."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, MeanSquaredError, Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from lstmkit._validation import check_bool, check_float, check_int
from lstmkit.tasks.base import Batch, SequenceTask, plain_hparams
from lstmkit.tasks.heads import encoder_kwargs, to_plain, valid_mask

#: Label of output positions to ignore (after ``<eos>``), as in the other tasks.
IGNORE_INDEX = -100
#: Decoder options that must equal the encoder's, so the encoder's final state starts it.
STATE_OPTIONS = ("hidden_size", "num_layers", "proj_size")


class ExactMatch(Metric):
    """Fraction of sequences whose every valid position is predicted right.

    ``update(pred, target)`` with ``(B, L)`` tensors; positions where ``target`` is
    ``IGNORE_INDEX`` do not count (a prediction may differ there).
    """

    full_state_update = False

    def __init__(self, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.add_state("correct", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor) -> None:
        ok = (pred == target) | (target == self.ignore_index)  # (B, L)
        self.correct += ok.all(dim=1).sum()
        self.total += target.shape[0]

    def compute(self) -> Tensor:
        return self.correct / self.total.clamp_min(1)


class Seq2SeqLSTM(SequenceTask):
    """Encoder-decoder LSTM (Sutskever et al. 2014) for outputs of a different length.

    The encoder reads the input (optionally reversed within each length); its final
    ``(h_n, c_n)`` starts the decoder. The decoder reads the previous output — the target
    (teacher forcing) with probability ``teacher_forcing`` in training, else its own greedy
    prediction — and predicts the next one.

    Two kinds of outputs:

    - tokens (``num_classes`` set): the decoder starts from ``<bos>`` (``bos_index``) and stops at
      ``<eos>`` (``eos_index``) or after ``max_output_len`` steps. Targets ``(B, L)`` hold the
      tokens, ``<eos>``, then ``IGNORE_INDEX``. Metrics: per-token accuracy (``token_acc``) and
      exact-sequence match (``exact_match``), both of greedy decoding (no teacher forcing).
    - real values (``output_size`` set): the decoder starts from zeros and runs ``horizon``
      steps; targets ``(B, horizon, output_size)`` standardised with ``target_mean/std``.
      Metrics: MSE and MAE of greedy decoding in original units.

    Args:
        encoder: ``lstmkit.nn.build_lstm`` keyword arguments (``backend``, ``hidden_size``, ...).
        decoder: overrides of ``encoder`` for the decoder (e.g. ``{"backend": "custom"}``);
            ``hidden_size``, ``num_layers`` and ``proj_size`` must stay equal. None: the same.
        input_size / vocab_size, embedding_dim, padding_idx: float features or token inputs.
        num_classes: output vocabulary (token outputs); the decoder embeds it with
            ``embedding_dim`` (or 32).
        bos_index, eos_index: the start and end tokens of the outputs.
        max_output_len: the longest greedy decoding (tokens).
        output_size, horizon, target_mean, target_std: real-valued outputs (see above).
        log_target: the data's targets are logs (``data.log_target``): predictions and metrics
            are turned back with ``exp`` after de-standardising.
        target_channels: which input channels hold the targets (given by time-series data;
            accepted for a uniform interface, not used by this task).
        teacher_forcing: probability of feeding the target in training at the first epoch.
        teacher_forcing_final: the probability reached after ``teacher_forcing_epochs`` epochs
            (linear schedule; None keeps ``teacher_forcing``).
        teacher_forcing_epochs: length of the schedule.
        reverse_input: read each input sequence backwards (within its length).
        optimizer, scheduler: partials, as in the other tasks.

    Example:
        >>> model = Seq2SeqLSTM({"backend": "cudnn", "hidden_size": 16}, vocab_size=14,
        ...                     embedding_dim=8, num_classes=14, max_output_len=5)
        >>> model.generate(torch.randint(3, 14, (2, 7)), torch.tensor([7, 4])).shape
        torch.Size([2, 5])
    """

    per_step = False  # the targets have their own length, not one label per input step

    def __init__(
        self,
        encoder: Mapping[str, Any] | Any,
        decoder: Mapping[str, Any] | None = None,
        input_size: int | None = None,
        vocab_size: int | None = None,
        embedding_dim: int | None = None,
        padding_idx: int | None = None,
        num_classes: int | None = None,
        bos_index: int = 1,
        eos_index: int = 2,
        max_output_len: int = 20,
        output_size: int | None = None,
        horizon: int | None = None,
        target_mean: Sequence[float] | None = None,
        target_std: Sequence[float] | None = None,
        log_target: bool = False,
        target_channels: Sequence[int] | None = None,
        teacher_forcing: float = 1.0,
        teacher_forcing_final: float | None = None,
        teacher_forcing_epochs: int = 0,
        reverse_input: bool = False,
        optimizer: Any = None,
        scheduler: Any = None,
    ) -> None:
        super().__init__()
        init = dict(locals())
        enc = encoder_kwargs(encoder)
        dec = dict(enc)
        if decoder is not None:  # overrides of the encoder's arguments
            overrides = to_plain(decoder)
            for key in ("_target_", "_partial_"):
                overrides.pop(key, None)
            dec.update(encoder_kwargs({**dec, **overrides}))
        init["decoder"] = dec
        self.save_hyperparameters(plain_hparams(init))
        check_bool("reverse_input", reverse_input)
        if (num_classes is None) == (output_size is None):
            raise ValueError(
                f"num_classes={num_classes!r}, output_size={output_size!r}: set exactly one "
                "(num_classes for token outputs, output_size for real values)"
            )
        if enc.get("bidirectional") or dec.get("bidirectional"):
            raise ValueError(
                "encoder.bidirectional=True: Seq2SeqLSTM hands the encoder's final state to a "
                "left-to-right decoder; use a unidirectional encoder"
            )
        for key in STATE_OPTIONS:
            if enc.get(key) != dec.get(key):
                raise ValueError(
                    f"decoder.{key}={dec.get(key)!r}: must equal encoder.{key}={enc.get(key)!r} "
                    "(the encoder's final state starts the decoder)"
                )
        check_float("teacher_forcing", teacher_forcing, low=0.0, high=1.0)
        if teacher_forcing_final is not None:
            check_float("teacher_forcing_final", teacher_forcing_final, low=0.0, high=1.0)
        check_int("teacher_forcing_epochs", teacher_forcing_epochs, minimum=0)
        self.tokens = num_classes is not None
        from lstmkit.nn import build_lstm

        # ---- encoder input
        if vocab_size is not None:
            dim = check_int("embedding_dim", embedding_dim or 32)
            self.embedding: nn.Embedding | None = nn.Embedding(
                check_int("vocab_size", vocab_size), dim, padding_idx=padding_idx
            )
            encoder_input = dim
        else:
            if input_size is None:
                raise ValueError(
                    "input_size=None: set input_size (float features) or vocab_size (token ids)"
                )
            self.embedding = None
            encoder_input = check_int("input_size", input_size)
        self.encoder = build_lstm(**enc, input_size=encoder_input, batch_first=True)

        # ---- decoder input and output
        if self.tokens:
            self.num_classes = check_int("num_classes", num_classes, minimum=2)
            self.max_output_len = check_int("max_output_len", max_output_len)
            dim = check_int("embedding_dim", embedding_dim or 32)
            self.decoder_embedding: nn.Embedding | None = nn.Embedding(self.num_classes, dim)
            decoder_input = dim
            out_features = self.num_classes
        else:
            self.output_size = check_int("output_size", output_size)
            self.horizon = check_int("horizon", horizon or 1)
            self.decoder_embedding = None
            decoder_input = out_features = self.output_size
        mean = torch.zeros(out_features) if target_mean is None else torch.as_tensor(target_mean)
        std = torch.ones(out_features) if target_std is None else torch.as_tensor(target_std)
        self.register_buffer("target_mean", mean.float(), persistent=False)
        self.register_buffer("target_std", std.float(), persistent=False)
        self.decoder = build_lstm(**dec, input_size=decoder_input, batch_first=True)
        self.head = nn.Linear(self.decoder.output_size, out_features)
        self.num_directions = 1

        metrics = self.make_metrics()
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        from lstmkit.tasks import tbptt

        tbptt.configure(self)  # as SequenceTask._build does (no TBPTT options here: a no-op)

    # ----------------------------------------------------------------- SequenceTask hooks
    def make_metrics(self) -> MetricCollection:
        if self.tokens:
            return MetricCollection(
                {
                    "token_acc": MulticlassAccuracy(
                        self.num_classes, average="micro", ignore_index=IGNORE_INDEX
                    ),
                    "exact_match": ExactMatch(),
                }
            )
        return MetricCollection({"mse": MeanSquaredError(), "mae": MeanAbsoluteError()})

    def compute_loss(self, out: Tensor, y: Tensor, lengths: Tensor | None) -> Tensor:
        if self.tokens:  # (B, L, V), (B, L)
            return F.cross_entropy(out.flatten(0, 1), y.flatten(), ignore_index=IGNORE_INDEX)
        return F.mse_loss(out, y)

    def metric_inputs(
        self, out: Tensor, y: Tensor, lengths: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        if self.tokens:
            return out, y  # greedy tokens (B, L), targets (B, L)
        return self.inverse_transform(out).reshape(-1), self.inverse_transform(y).reshape(-1)

    # ----------------------------------------------------------------- model
    def encoder_input(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """What the encoder reads: ``x`` reversed (if ``reverse_input``) and embedded.

        ``x``: ``(B, T)`` token ids or ``(B, T, C)`` floats -> ``(B, T, E or C)``.
        """
        if self.hparams.reverse_input:
            x = reverse_within(x, lengths)
        if self.embedding is not None:
            if x.dim() == 3 and x.shape[-1] == 1:
                x = x.squeeze(-1)
            x = self.embedding(x.long())  # (B, T) -> (B, T, E)
        return x

    def encode(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The encoder's final ``(h_n, c_n)``, each ``(L, B, ·)``, at each sequence's last step."""
        _, state = self.encoder(self.encoder_input(x, lengths), lengths=lengths)
        return state

    def _decoder_input(self, previous: Tensor) -> Tensor:
        """Previous outputs -> decoder input: ``(B, S)`` tokens or ``(B, S, O)`` values."""
        if self.tokens:
            return self.decoder_embedding(previous.clamp_min(0))  # (B, S) -> (B, S, E)
        return previous

    def _start(self, batch: int, device: torch.device) -> Tensor:
        if self.tokens:
            return torch.full((batch, 1), self.hparams.bos_index, dtype=torch.long, device=device)
        return torch.zeros(batch, 1, self.output_size, device=device)

    def forward(
        self,
        x: Tensor,
        lengths: Tensor | None = None,
        target: Tensor | None = None,
        teacher_forcing: float = 1.0,
    ) -> Tensor:
        """Decoder outputs: logits ``(B, L, V)`` or standardised values ``(B, L, O)``.

        With ``target`` ``(B, L)`` / ``(B, L, O)``, ``L`` steps where the decoder reads, per step
        and sequence, the previous target with probability ``teacher_forcing`` and its own
        previous prediction otherwise (with 1.0 the whole shifted target in one call). Without
        ``target``, greedy decoding for ``max_output_len`` (tokens) or ``horizon`` steps.
        """
        state = self.encode(x, lengths)
        if target is None:
            steps = self.max_output_len if self.tokens else self.horizon
            return self._greedy(state, x.shape[0], steps, x.device, stop_at_eos=False)
        batch, steps = target.shape[0], target.shape[1]
        shifted = torch.cat([self._start(batch, x.device), target[:, :-1]], dim=1)  # (B, L, ·)
        if teacher_forcing >= 1.0:
            out, _ = self.decoder(self._decoder_input(shifted), state)  # (B, L, P)
            return self.head(out)
        outputs, previous = [], shifted[:, :1]
        for t in range(steps):
            out, state = self.decoder(self._decoder_input(previous), state)  # (B, 1, P)
            step = self.head(out)  # (B, 1, V or O)
            outputs.append(step)
            if t + 1 < steps:
                own = step.argmax(-1) if self.tokens else step.detach()
                use_target = torch.rand(batch, device=x.device) < teacher_forcing  # (B,)
                mask = use_target.view(batch, *([1] * (own.dim() - 1)))
                previous = torch.where(mask, shifted[:, t + 1 : t + 2], own)
        return torch.cat(outputs, dim=1)

    def _greedy(
        self,
        state: tuple[Tensor, Tensor],
        batch: int,
        steps: int,
        device: torch.device,
        stop_at_eos: bool,
    ) -> Tensor:
        """Feed the decoder its own previous output for ``steps`` steps: ``(B, S, V or O)``
        (fewer steps if ``stop_at_eos`` and every sequence has emitted ``<eos>``)."""
        previous, outputs = self._start(batch, device), []
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        for _ in range(steps):
            out, state = self.decoder(self._decoder_input(previous), state)
            step = self.head(out)  # (B, 1, V or O)
            outputs.append(step)
            previous = step.argmax(-1) if self.tokens else step  # (B, 1) or (B, 1, O)
            if self.tokens and stop_at_eos:
                done = done | (previous.squeeze(1) == self.hparams.eos_index)
                if bool(done.all()):
                    break
        return torch.cat(outputs, dim=1)

    @torch.no_grad()
    def generate(
        self, x: Tensor, lengths: Tensor | None = None, max_len: int | None = None
    ) -> Tensor:
        """Greedy decoding.

        Returns:
            tokens ``(B, max_len)`` (default ``max_output_len``) with ``<eos>`` where each
            sequence ended and padding after it (decoding stops once every sequence has
            ended); or values ``(B, max_len or horizon, O)`` (standardised).
        """
        steps = max_len or (self.max_output_len if self.tokens else self.horizon)
        out = self._greedy(self.encode(x, lengths), x.shape[0], steps, x.device, stop_at_eos=True)
        if not self.tokens:
            return out
        tokens = out.argmax(-1)  # (B, S)
        ended = (tokens == self.hparams.eos_index).long().cumsum(1)  # (B, S)
        after_eos = (ended - (tokens == self.hparams.eos_index).long()) > 0  # strictly after
        tokens = tokens.masked_fill(after_eos, self.hparams.padding_idx or 0)
        if tokens.shape[1] < steps:  # every sequence ended early: pad to max_len
            tokens = F.pad(
                tokens, (0, steps - tokens.shape[1]), value=self.hparams.padding_idx or 0
            )
        return tokens

    def inverse_transform(self, y: Tensor) -> Tensor:
        """Standardised values ``(..., O)`` -> original units (``exp`` of logs with
        ``log_target``)."""
        y = y * self.target_std + self.target_mean
        return y.exp() if self.hparams.get("log_target") else y

    def teacher_forcing_ratio(self, epoch: int | None = None) -> float:
        """The scheduled probability of teacher forcing at ``epoch`` (default: the current)."""
        hp = self.hparams
        start = float(hp.teacher_forcing)
        final = start if hp.teacher_forcing_final is None else float(hp.teacher_forcing_final)
        epoch = self.current_epoch if epoch is None else epoch
        if hp.teacher_forcing_epochs == 0:
            return final if epoch > 0 else start
        progress = min(1.0, epoch / hp.teacher_forcing_epochs)
        return start + (final - start) * progress

    # ----------------------------------------------------------------- steps
    def _shared_step(self, batch: Batch, stage: str) -> Tensor:
        x, y, lengths = batch
        if not self.tokens and y.dim() == 2:
            y = y.unsqueeze(1)  # (B, O) -> (B, 1, O)
        ratio = self.teacher_forcing_ratio() if stage == "train" else 1.0
        out = self(x, lengths, target=y, teacher_forcing=ratio)
        loss = self.compute_loss(out, y, lengths)
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        with torch.no_grad():
            if stage == "train":  # cheap: what teacher forcing predicted
                pred = out.argmax(-1) if self.tokens else out.detach()
            else:  # honest: greedy decoding, as at inference
                pred = self.generate(x, lengths, max_len=y.shape[1])
            metrics.update(*self.metric_inputs(pred, y, lengths))
        self.log_step(stage, loss, metrics, len(x))
        if stage == "train":
            self.log("train/teacher_forcing", ratio, on_step=False, on_epoch=True)
        return loss

    def predict_step(self, batch: Batch, batch_idx: int = 0) -> dict[str, Tensor]:
        """``{"pred"}`` (greedy tokens ``(B, L)`` or values in original units) and, when the
        batch has targets, ``"target"``."""
        x, y, lengths = batch if len(batch) == 3 else (batch[0], None, batch[-1])
        max_len = None if y is None else y.shape[1]
        pred = self.generate(x, lengths, max_len=max_len)
        if not self.tokens:
            pred = self.inverse_transform(pred)
        result = {"pred": pred}
        if y is not None:
            result["target"] = y if self.tokens else self.inverse_transform(y)
        return result


def reverse_within(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of batch-first ``x`` ``(B, T, ...)`` within its length; padding
    stays at the end."""
    if lengths is None:
        return x.flip(1)
    steps = x.shape[1]
    t = torch.arange(steps, device=x.device).unsqueeze(0)  # (1, T)
    n = torch.as_tensor(lengths, device=x.device).unsqueeze(1)  # (B, 1)
    index = torch.where(t < n, n - 1 - t, t)  # (B, T)
    index = index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


__all__ = ["ExactMatch", "Seq2SeqLSTM", "reverse_within", "valid_mask"]
