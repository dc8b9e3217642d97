"""Sequence classification: one label per sequence, or one per step (sequence labelling)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import AUROC, Accuracy, F1Score, MetricCollection

from lstmkit._validation import check_float, check_int
from lstmkit.tasks.base import Batch, SequenceTask, plain_hparams
from lstmkit.tasks.heads import valid_mask

#: Label of steps to ignore in per-step targets (torch's cross-entropy default).
IGNORE_INDEX = -100


def check_labels(y: Tensor, logits: Tensor, per_step: bool) -> None:
    """Labels must be integer class indices of shape ``(B,)`` (``(B, T)`` per step).

    Raises:
        TypeError: float or bool labels (names ``y`` and the fix).
        ValueError: labels of the wrong shape (names ``y``, expected and actual shapes).
    """
    if not isinstance(y, Tensor):
        raise TypeError(f"y={type(y).__name__}: labels must be a tensor of class indices")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(
            f"y has dtype {y.dtype}: labels must be integer class indices (torch.long) in "
            f"[0, num_classes); convert with y.long() (or map the class names to ids)"
        )
    expected = tuple(logits.shape[:2]) if per_step else tuple(logits.shape[:1])
    if tuple(y.shape) != expected:
        what = "(batch, time)" if per_step else "(batch,)"
        raise ValueError(
            f"y has shape {tuple(y.shape)}: labels must be {what} = {expected} class indices, "
            "one per sequence" + (" step" if per_step else "")
        )


class SequenceClassifier(SequenceTask):
    """Classify sequences (many-to-one) or label every step (``per_step=True``).

    Loss: cross-entropy with optional class weights and label smoothing; steps past each
    sequence's length, or labelled ``-100``, are ignored. Metrics per stage: accuracy, macro F1
    and macro AUROC (``train/acc``, ``val/f1``, ``test/auroc``, ...).

    Args:
        encoder: ``lstmkit.nn.build_lstm`` keyword arguments (``backend``, ``hidden_size``,
            ``num_layers``, ...), as a mapping or a ``functools.partial(build_lstm, ...)``.
        num_classes: number of classes.
        input_size: features per step, for float inputs ``(B, T, C)``.
        vocab_size: token ids for an embedding, for integer inputs ``(B, T)``.
        embedding_dim: embedding width when ``vocab_size`` is set.
        padding_idx: embedding row kept at zero (``torch.nn.Embedding``'s argument).
        per_step: one label per step ``(B, T)`` instead of one per sequence ``(B,)``.
        pooling: ``"last"``, ``"mean"`` or ``"max"`` over valid steps (many-to-one only).
        frontend: a convolutional front end before the encoder (``lstmkit.nn.ConvFrontEnd``
            arguments: ``channels``, ``kernel_size``, ``stride``, ``num_layers``, ``norm``,
            ``dropout``), which shortens long sequences about ``stride ** num_layers``-fold;
            None (default): off. Not with ``per_step``, ``tbptt_steps`` or ``stateful``,
            unless ``"auto": True`` is among the arguments: then such a task gets none.
        head_hidden_size: 0 for a linear head, else the width of a one-hidden-layer MLP.
        dropout: dropout before each head layer.
        class_weights: ``num_classes`` loss weights, or None.
        label_smoothing: cross-entropy label smoothing in ``[0, 1)``.
        optimizer: a partial taking the parameters (Hydra ``_partial_: true``); default Adam.
        scheduler: a partial taking the optimizer, or None; stepped on ``val/loss`` each epoch.
        tbptt_steps: truncated BPTT: chunks of this many steps, state carried detached
            (see :mod:`lstmkit.tasks.tbptt`); None trains through whole sequences.
        stateful: carry the final state of each batch into the next (consecutive windows
            of one long series, ``lstmkit.data.StreamDataModule``).
        compile: ``torch.compile`` the model in place when fitting starts (state-dict keys
            unchanged); the custom core is one operator in the graph (cuDNN: a graph break).

    Example:
        >>> model = SequenceClassifier({"backend": "cudnn", "hidden_size": 16}, num_classes=3,
        ...                            input_size=2)
        >>> model(torch.randn(4, 7, 2), torch.tensor([7, 5, 3, 1])).shape
        torch.Size([4, 3])
    """

    def __init__(
        self,
        encoder: Mapping[str, Any] | Any,
        num_classes: int,
        input_size: int | None = None,
        vocab_size: int | None = None,
        embedding_dim: int | None = None,
        padding_idx: int | None = None,
        per_step: bool = False,
        frontend: Mapping[str, Any] | None = None,
        pooling: str = "last",
        head_hidden_size: int = 0,
        dropout: float = 0.0,
        class_weights: Sequence[float] | None = None,
        label_smoothing: float = 0.0,
        optimizer: Any = None,
        scheduler: Any = None,
        tbptt_steps: int | None = None,
        stateful: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(plain_hparams(locals()))
        self.num_classes = check_int("num_classes", num_classes, minimum=2)
        self.per_step = bool(per_step)
        check_float("label_smoothing", label_smoothing, low=0.0, high=1.0, high_inclusive=False)
        weights = None
        if class_weights is not None:
            weights = torch.as_tensor(list(class_weights), dtype=torch.float32)
            if weights.shape != (num_classes,):
                raise ValueError(
                    f"class_weights={list(class_weights)}: needs num_classes={num_classes} values"
                )
        self.register_buffer("class_weights", weights, persistent=False)
        self._build(out_features=num_classes)

    def make_metrics(self) -> MetricCollection:
        kw = {"task": "multiclass", "num_classes": self.num_classes}
        return MetricCollection(
            {
                "acc": Accuracy(**kw),
                "f1": F1Score(average="macro", **kw),
                "auroc": AUROC(average="macro", **kw),
            }
        )

    def _valid(self, logits: Tensor, y: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor]:
        """Logits ``(N, C)`` and labels ``(N,)`` of the steps/sequences that count."""
        if not self.per_step:
            return logits, y  # (B, C), (B,)
        batch, steps = y.shape
        keep = valid_mask(lengths, batch, steps, y.device) & (y != IGNORE_INDEX)  # (B, T)
        return logits[keep], y[keep]  # (N, C), (N,)

    def compute_loss(self, out: Tensor, y: Tensor, lengths: Tensor | None) -> Tensor:
        check_labels(y, out, self.per_step)
        logits, target = self._valid(out, y, lengths)
        if target.numel() and (int(target.min()) < 0 or int(target.max()) >= logits.size(-1)):
            bad = target[(target < 0) | (target >= logits.size(-1))][0]
            raise ValueError(
                f"labels must be class indices in [0, num_classes={logits.size(-1)}), got "
                f"{int(bad)}"
            )
        return F.cross_entropy(
            logits,
            target,
            weight=self.class_weights,
            label_smoothing=self.hparams.label_smoothing,
        )

    def metric_inputs(
        self, out: Tensor, y: Tensor, lengths: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        logits, target = self._valid(out, y, lengths)
        return logits.softmax(-1), target

    def predict_step(self, batch: Batch, batch_idx: int = 0) -> dict[str, Tensor]:
        """``{"pred", "prob"}`` and, when the batch has labels, ``"target"``; per-step outputs
        are flattened to the valid steps."""
        x, y, lengths = batch if len(batch) == 3 else (batch[0], None, batch[-1])
        logits = self(x, lengths)  # (B, C) or (B, T, C)
        if y is not None:
            logits, y = self._valid(logits, y, lengths)
        prob = logits.softmax(-1)
        result = {"pred": prob.argmax(-1), "prob": prob}
        if y is not None:
            result["target"] = y
        return result
