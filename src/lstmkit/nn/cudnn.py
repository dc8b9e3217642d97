"""`CudnnLSTM`: torch.nn.LSTM (cuDNN on CUDA, oneDNN/native kernels on CPU) behind lstmkit's interface."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .base import LSTMBase, State, apply_init_options, check_lstm_args


class CudnnLSTM(LSTMBase, nn.LSTM):
    """``torch.nn.LSTM`` with lstmkit's interface: ``lengths=``, validation, init options.

    It *is* a ``torch.nn.LSTM`` (``isinstance`` holds), so its parameters, ``state_dict``,
    ``flatten_parameters()`` and device moves are torch's own, and weights load both ways with no
    converter. On CUDA the recurrence runs in cuDNN.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size,
        device, dtype: exactly ``torch.nn.LSTM``'s.
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
        if lengths is None:
            return self._torch_forward(x, hx)
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        output, state = self._torch_forward(packed, hx)
        padded, _ = pad_packed_sequence(output, total_length=x.shape[0])
        return padded, state

    def _run_packed(self, packed: PackedSequence, hx: State) -> tuple[PackedSequence, State]:
        return self._torch_forward(packed, hx)

    def _torch_forward(self, x, hx: State):
        # The base class hands over time-major tensors; torch.nn.LSTM reads self.batch_first, so a
        # batch-first module gets its (free, view-only) transpose back.
        if self.batch_first and not isinstance(x, PackedSequence):
            output, state = nn.LSTM.forward(self, x.transpose(0, 1), hx)
            return output.transpose(0, 1), state
        return nn.LSTM.forward(self, x, hx)

    def extra_repr(self) -> str:
        s = LSTMBase.extra_repr(self)
        if self.forget_bias:
            s += f", forget_bias={self.forget_bias}"
        if self.input_bias:
            s += f", input_bias={self.input_bias}"
        if self.recurrent_init != "default":
            s += f", recurrent_init={self.recurrent_init!r}"
        return s
