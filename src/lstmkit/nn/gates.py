"""Gate recording: what the LSTM's gates did, step by step, for inspection and plots.

Recording runs the readable reference loop (`lstmkit.nn.cell.lstm_step`), so the normal forward
pays nothing for it. Weights trained with any backend can be recorded: `to_custom` turns a
``torch.nn.LSTM`` / `CudnnLSTM` into an equal `CustomLSTM`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn


@dataclass
class GateTrace:
    """Per-step activations of every layer and direction.

    Each field is ``(num_layers * num_directions, batch, seq, hidden)`` (``hidden`` is
    ``proj_size`` for ``hidden`` when a projection is used), rows ordered like ``h_n``, zero at
    padded steps. Unbatched input gives ``(num_layers * num_directions, seq, hidden)``.
    ``cell`` is the cell state ``c_t``; ``hidden`` is ``h_t``.
    """

    input_gate: Tensor
    forget_gate: Tensor
    cell_gate: Tensor
    output_gate: Tensor
    cell: Tensor
    hidden: Tensor

    @classmethod
    def from_steps(cls, per_direction: list[list[Tensor]]) -> GateTrace:
        """From one list ``[i, f, g, o, c, h]`` of time-major ``(T, B, ·)`` tensors per direction."""
        stacked = [
            torch.stack(values).transpose(1, 2) for values in zip(*per_direction, strict=True)
        ]
        return cls(*stacked)

    def squeeze_batch(self) -> GateTrace:
        return GateTrace(*(getattr(self, f.name).squeeze(1) for f in fields(self)))

    def detach(self) -> GateTrace:
        return GateTrace(*(getattr(self, f.name).detach() for f in fields(self)))

    def as_dict(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@contextmanager
def record_gates(module: nn.Module) -> Iterator[list[GateTrace]]:
    """Record a `GateTrace` for every `CustomLSTM` call inside ``module`` (itself included).

    Example::

        with record_gates(model) as traces:
            model(x)
        traces[0].forget_gate  # (layers * directions, batch, seq, hidden)

    Raises ``ValueError`` if ``module`` contains no CustomLSTM (convert with `to_custom`).
    """
    from .custom import CustomLSTM

    cores = [m for m in module.modules() if isinstance(m, CustomLSTM)]
    if not cores:
        raise ValueError(
            f"{type(module).__name__} contains no CustomLSTM to record; gates are recorded by the "
            "custom backend: convert a torch.nn.LSTM/CudnnLSTM with lstmkit.nn.to_custom(lstm)"
        )
    traces: list[GateTrace] = []
    previous = [core._recorder for core in cores]
    for core in cores:
        core._recorder = traces
    try:
        yield traces
    finally:
        for core, old in zip(cores, previous, strict=True):
            core._recorder = old


def to_custom(lstm: nn.LSTM | nn.Module, **options) -> nn.Module:
    """An equal `CustomLSTM` (same arguments, device, dtype and weights) from a ``torch.nn.LSTM``.

    ``options`` are extra CustomLSTM keyword arguments (e.g. ``implementation``). A CustomLSTM
    given with no options is returned as it is.
    """
    from .custom import CustomLSTM

    if isinstance(lstm, CustomLSTM) and not options:
        return lstm
    if not isinstance(lstm, (nn.LSTM, CustomLSTM)):
        raise TypeError(
            f"to_custom expects a torch.nn.LSTM or lstmkit core, got {type(lstm).__name__}"
        )
    weight = lstm.weight_ih_l0
    custom = CustomLSTM(
        lstm.input_size,
        lstm.hidden_size,
        num_layers=lstm.num_layers,
        bias=lstm.bias,
        batch_first=lstm.batch_first,
        dropout=lstm.dropout,
        bidirectional=lstm.bidirectional,
        proj_size=lstm.proj_size,
        device=weight.device,
        dtype=weight.dtype,
        **options,
    )
    custom.load_state_dict(lstm.state_dict())
    custom.train(lstm.training)
    return custom
