"""`CudnnLSTM`: torch.nn.LSTM (cuDNN on CUDA, oneDNN/native kernels on CPU) behind lstmkit's interface."""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from lstmkit._lstm_args import check_lstm_args

from .base import LSTMBase, State, apply_init_options


class CudnnLSTM(LSTMBase, nn.LSTM):
    """``torch.nn.LSTM`` with lstmkit's interface: ``lengths=``, validation, init options.

    It *is* a ``torch.nn.LSTM`` (``isinstance`` holds), so its parameters, ``state_dict``,
    ``flatten_parameters()`` and device moves are torch's own, and weights load both ways with no
    converter. On CUDA the recurrence runs in cuDNN.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size, device, dtype: exactly ``torch.nn.LSTM``'s.
        forget_bias: added to the forget-gate slice of every ``bias_ih`` at initialisation.
        input_bias: added to the input-gate slice of every ``bias_ih`` at initialisation
            (negative: cells start closed to their input; see `apply_init_options`).
        recurrent_init: ``"default"`` (torch's uniform) or ``"orthogonal"`` (per-gate blocks of
            ``weight_hh``).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        forget_bias: float = 0.0,
        input_bias: float = 0.0,
        recurrent_init: str = "default",
    ) -> None:
        check_lstm_args(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
        )
        nn.LSTM.__init__(
            self,
            input_size,
            hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=batch_first,
            dropout=dropout,
            bidirectional=bidirectional,
            proj_size=proj_size,
            device=device,
            dtype=dtype,
        )
        self.forget_bias, self.input_bias = float(forget_bias), float(input_bias)
        self.recurrent_init = recurrent_init
        apply_init_options(self, self.forget_bias, self.recurrent_init, self.input_bias)

    def reset_parameters(self) -> None:
        nn.LSTM.reset_parameters(self)
        if hasattr(self, "recurrent_init"):  # nn.LSTM.__init__ calls this before they are set
            apply_init_options(self, self.forget_bias, self.recurrent_init, self.input_bias)

    def _run(self, x: Tensor, hx: State, lengths: Tensor | None) -> tuple[Tensor, State]:
        return run_torch_lstm(self, x, hx, lengths)

    def _run_packed(self, packed: PackedSequence, hx: State) -> tuple[PackedSequence, State]:
        return nn.LSTM.forward(self, packed, hx)

    def extra_repr(self) -> str:
        s = LSTMBase.extra_repr(self)
        if self.forget_bias:
            s += f", forget_bias={self.forget_bias}"
        if self.input_bias:
            s += f", input_bias={self.input_bias}"
        if self.recurrent_init != "default":
            s += f", recurrent_init={self.recurrent_init!r}"
        return s


def run_torch_lstm(
    module: nn.Module, x: Tensor, hx: State, lengths: Tensor | None
) -> tuple[Tensor, State]:
    """torch.nn.LSTM's own forward (cuDNN on CUDA, oneDNN on CPU) over ``module``'s weights, on
    time-major ``x (T, B, C)``; ``lengths`` through a PackedSequence. ``module`` is an
    ``nn.LSTM`` or offers its surface (`CustomLSTM` does)."""
    if lengths is not None:
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        output, state = nn.LSTM.forward(module, packed, hx)
        padded, _ = pad_packed_sequence(output, total_length=x.shape[0])
        return padded, state
    # torch.nn.LSTM reads module.batch_first: a batch-first module gets its (free, view-only)
    # transpose back
    if module.batch_first:
        output, state = nn.LSTM.forward(module, x.transpose(0, 1), hx)
        return output.transpose(0, 1), state
    return nn.LSTM.forward(module, x, hx)


def torch_lstm_runs(dtype: torch.dtype, device: str = "cpu") -> bool:
    """Whether ``torch.nn.LSTM`` runs a recurrence in ``dtype`` on ``device`` here, probed once
    with a tiny LSTM under autocast (oneDNN cannot build a bf16 LSTM on CPUs without native bf16
    support, e.g. AVX2-only ones)."""
    return _probe(dtype, torch.device(device).type)


@functools.cache
def _probe(dtype: torch.dtype, device: str) -> bool:
    lstm = nn.LSTM(2, 2).to(device)
    try:
        with torch.no_grad(), torch.autocast(device, dtype=dtype):
            lstm(torch.zeros(2, 1, 2, device=device))
    except RuntimeError:
        return False
    return True


torch.serialization.add_safe_globals([CudnnLSTM])
