"""Gate inspection of trained tasks: record i, f, g, o, c, h for chosen sequences, summarise
them and save heatmaps; from research code, as a Lightning callback, or via ``lstmkit-inspect``.

Recording uses the custom core's reference loop (``lstmkit.nn.record_gates``); an encoder trained
with the cuDNN backend is first copied into an equal ``CustomLSTM`` with ``lstmkit.nn.to_custom``,
so the numbers are those of the trained weights whatever the backend.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor

from lstmkit._logging import get_logger
from lstmkit.nn import GateTrace, to_custom

log = get_logger(__name__)

#: Gates whose saturation is summarised (sigmoid gates live in (0, 1)).
SIGMOID_GATES = ("input_gate", "forget_gate", "output_gate")


def encoder_input(model: LightningModule, x: Tensor, lengths: Tensor | None) -> Tensor:
    """What ``model.encoder`` reads for a batch ``x``: embedded tokens, reversed input, ..."""
    if hasattr(model, "encoder_input"):  # Seq2SeqLSTM: reversal and embedding
        return model.encoder_input(x, lengths)
    if hasattr(model, "encoder_inputs"):  # SequenceTask: embedding and front end
        return model.encoder_inputs(x, lengths)[0]
    embedding = getattr(model, "embedding", None)
    if embedding is not None:
        if x.dim() == 3 and x.shape[-1] == 1:
            x = x.squeeze(-1)
        return embedding(x.long())  # (B, T) -> (B, T, E)
    return x


def encoder_lengths(model: LightningModule, lengths: Tensor | None) -> Tensor | None:
    """The valid steps the encoder reads: ``lengths`` ``(B,)``, shortened by the model's
    convolutional front end when it has one (None stays None)."""
    frontend = getattr(model, "frontend", None)
    if frontend is None or lengths is None:
        return lengths
    return frontend.output_length(torch.as_tensor(lengths))


@torch.no_grad()
def record_task_gates(
    model: LightningModule, x: Tensor, lengths: Tensor | None = None
) -> GateTrace:
    """The encoder's gates on a batch, for a task trained with either backend.

    Args:
        model: a task with an ``encoder`` (``SequenceClassifier``, ``SequenceRegressor``,
            ``Seq2SeqLSTM``); it is used in eval mode.
        x: ``(B, T, C)`` floats or ``(B, T)`` token ids; lengths: ``(B,)`` or None.

    Returns:
        ``GateTrace`` with fields ``(num_layers * num_directions, B, T, hidden)``; ``T`` is
        the encoder's steps, ``T'`` after a convolutional front end (valid steps:
        :func:`encoder_lengths`).
    """
    was_training = model.training
    model.eval()
    try:
        core = to_custom(model.encoder)  # the module itself for the custom backend
        core.eval()
        inputs, steps = encoder_input(model, x, lengths), encoder_lengths(model, lengths)
        _, _, trace = core(inputs, lengths=steps, return_gates=True)
    finally:
        model.train(was_training)
    return trace


def gate_summary(
    trace: GateTrace, lengths: Tensor | None, layer: int = -1, threshold: float = 0.1
) -> dict[str, Any]:
    """Per-sequence forget-gate mean over time and the fraction of saturated gate values.

    Args:
        trace: a recording ``(layers * directions, B, T, H)``.
        lengths: ``(B,)`` valid steps (None: all).
        layer: row of the trace (``-1``: the top layer's last direction).
        threshold: a sigmoid gate value counts as saturated below ``threshold`` or above
            ``1 - threshold``.

    Returns:
        ``{"forget_gate_mean": (B, T) tensor with NaN past each length,
        "saturated_by_step": {gate: (T,)}, "saturated_fraction": {gate: float},
        "forget_gate_mean_overall": float}``.
    """
    forget = trace.forget_gate[layer].float()  # (B, T, H)
    batch, steps, _ = forget.shape
    if lengths is None:
        valid = torch.ones(batch, steps, dtype=torch.bool)
    else:
        valid = torch.arange(steps) < torch.as_tensor(lengths).cpu().unsqueeze(1)  # (B, T)
    valid = valid.to(forget.device)
    forget_mean = forget.mean(-1).masked_fill(~valid, float("nan"))  # (B, T)
    by_step, overall = {}, {}
    for name in SIGMOID_GATES:
        gate = getattr(trace, name)[layer].float()  # (B, T, H)
        saturated = ((gate < threshold) | (gate > 1 - threshold)).float().mean(-1)  # (B, T)
        counts = valid.sum(0).clamp_min(1)  # (T,)
        by_step[name] = (saturated * valid).sum(0) / counts  # (T,)
        overall[name] = float((saturated * valid).sum() / valid.sum().clamp_min(1))
    return {
        "forget_gate_mean": forget_mean,
        "forget_gate_mean_overall": float(forget_mean[valid].mean()),
        "saturated_by_step": by_step,
        "saturated_fraction": overall,
        "threshold": threshold,
    }


def save_gate_report(
    model: LightningModule,
    batch: tuple[Tensor, ...],
    out_dir: str | Path,
    sample_ids: Sequence[int] | None = None,
    layer: int = -1,
    threshold: float = 0.1,
) -> list[Path]:
    """Record the gates of a batch and write heatmaps, a summary plot and ``gate_summary.json``.

    Writes ``gates_sample<id>.png`` (unit × time heatmaps of i, f, g, o, c, h of ``layer``) for
    every sequence of the batch, ``gate_summary.png`` and ``gate_summary.json`` into
    ``out_dir``.

    Args:
        batch: ``(x, y, lengths)`` (or ``(x, lengths)``) of the chosen sequences.
        sample_ids: labels of the sequences (their indices in the split); default 0..B-1.
    """
    from lstmkit.runtime import plots

    x, lengths = batch[0], batch[-1]
    x, lengths = x.to(model.device), lengths.to(model.device)
    trace = record_task_gates(model, x, lengths)
    lengths = encoder_lengths(model, lengths)  # the encoder's steps (fewer with a front end)
    ids = list(sample_ids) if sample_ids is not None else list(range(len(x)))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = trace.forget_gate.shape[0]
    row = layer % rows
    which = f"layer row {row} of {rows}"
    saved = []
    for k, sample in enumerate(ids):
        one = {name: value[row, k] for name, value in trace.as_dict().items()}  # (T, H) each
        length = int(lengths[k])
        title = f"Gates of validation sequence {sample} ({which}, {length} steps)"
        saved.append(
            plots.plot_gate_heatmaps(one, out_dir / f"gates_sample{sample}.png", title, length)
        )
    summary = gate_summary(trace, lengths, layer=row, threshold=threshold)
    saved.append(
        plots.plot_gate_summary(
            summary["forget_gate_mean"],
            summary["saturated_by_step"],
            out_dir / "gate_summary.png",
            labels=[f"sequence {s}" for s in ids],
            threshold=threshold,
        )
    )
    payload = {
        "samples": ids,
        "lengths": [int(v) for v in lengths.cpu()],
        "layer_row": row,
        "threshold": threshold,
        "forget_gate_mean_overall": summary["forget_gate_mean_overall"],
        "saturated_fraction": summary["saturated_fraction"],
        "forget_gate_mean_by_step": [
            [None if v != v else round(float(v), 6) for v in r]
            for r in summary["forget_gate_mean"].cpu().tolist()
        ],
    }
    path = out_dir / "gate_summary.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    saved.append(path)
    return saved


def pick_samples(dataset: Any, loader: Any, ids: Sequence[int]) -> tuple[Tensor, ...]:
    """The sequences ``ids`` of a split as one batch ``(x, y, lengths)``.

    Uses the dataset's ``__getitems__`` (lstmkit's datasets) when there is one, else gathers
    them from the loader's batches (padded to the longest).
    """
    ids = list(ids)
    if hasattr(dataset, "__getitems__"):
        return dataset.__getitems__(ids)
    rows: dict[int, tuple[Tensor, ...]] = {}
    start = 0
    for batch in loader:
        for k in range(len(batch[0])):
            if start + k in ids:
                rows[start + k] = tuple(t[k] for t in batch)
        start += len(batch[0])
        if len(rows) == len(ids):
            break
    missing = [i for i in ids if i not in rows]
    if missing:
        raise ValueError(f"samples={ids}: the split has only {start} sequences")
    x = torch.nn.utils.rnn.pad_sequence([rows[i][0] for i in ids], batch_first=True)
    rest = [torch.stack([rows[i][j] for i in ids]) for j in range(1, len(rows[ids[0]]))]
    return (x, *rest)


class GateInspection(Callback):
    """Record the gates of chosen validation sequences and save heatmaps and summaries.

    At the end of fitting (and every ``every_n_epochs`` validation epochs if > 0) it writes
    ``gates_sample<id>.png``, ``gate_summary.png`` and ``gate_summary.json`` (see
    :func:`save_gate_report`) into ``dirpath`` (``<run>/gates`` by default;
    ``<run>/gates/epoch_<k>`` for the periodic ones). Works with either backend.

    Args:
        samples: indices of validation sequences.
        layer: row of the recording to draw (``-1``: the top layer).
        every_n_epochs: also record every that many epochs; 0 only at the end of fitting.
        dirpath: output folder; None: ``<trainer.default_root_dir>/gates``.
        threshold: saturation threshold (see :func:`gate_summary`).
    """

    def __init__(
        self,
        samples: Sequence[int] = (0, 1, 2),
        layer: int = -1,
        every_n_epochs: int = 0,
        dirpath: str | None = None,
        threshold: float = 0.1,
    ) -> None:
        if not samples:
            raise ValueError("samples=[]: give at least one validation sequence index")
        if any(int(s) < 0 for s in samples):
            raise ValueError(f"samples={list(samples)}: indices must be >= 0")
        if not 0.0 < threshold < 0.5:
            raise ValueError(f"threshold={threshold!r}: must lie in (0, 0.5)")
        self.samples = [int(s) for s in samples]
        self.layer = int(layer)
        self.every_n_epochs = int(every_n_epochs)
        self.dirpath = dirpath
        self.threshold = float(threshold)

    def _folder(self, trainer: Trainer) -> Path:
        return Path(self.dirpath) if self.dirpath else Path(trainer.default_root_dir) / "gates"

    def _report(self, trainer: Trainer, model: LightningModule, folder: Path) -> None:
        datamodule = trainer.datamodule
        if datamodule is None:
            log.warning("GateInspection: no datamodule to take validation sequences from")
            return
        loader = datamodule.val_dataloader()
        try:
            batch = pick_samples(loader.dataset, loader, self.samples)
        except (IndexError, ValueError) as err:  # never fail a finished run over a plot
            log.warning("GateInspection: samples=%s not recorded: %s", self.samples, err)
            return
        saved = save_gate_report(model, batch, folder, self.samples, self.layer, self.threshold)
        log.info("GateInspection: wrote %d files to %s", len(saved), folder)

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self.every_n_epochs <= 0:
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            folder = self._folder(trainer) / f"epoch_{trainer.current_epoch:03d}"
            self._report(trainer, pl_module, folder)

    @rank_zero_only
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.fast_dev_run:
            return
        self._report(trainer, pl_module, self._folder(trainer))


__all__ = [
    "GateInspection",
    "encoder_input",
    "encoder_lengths",
    "gate_summary",
    "pick_samples",
    "record_task_gates",
    "save_gate_report",
]
