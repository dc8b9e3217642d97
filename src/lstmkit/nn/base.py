"""The interface every recurrent core shares: torch.nn.LSTM's arguments, inputs and outputs.

`LSTMBase.forward` owns the plumbing once — batch_first, unbatched input, PackedSequence,
``lengths=``, state creation on the input's device and dtype, and validation with messages that
name expected and actual sizes. A backend implements only `_run` (and optionally
`_run_packed`) on time-major tensors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

State = tuple[Tensor, Tensor]
Lengths = Tensor | Sequence[int]


class LSTMInputError(RuntimeError, ValueError):
    """Misuse of a core's ``forward`` (shapes, sizes, dtypes, lengths).

    Both a ``RuntimeError`` and a ``ValueError``: ``torch.nn.LSTM`` raises ``RuntimeError`` for
    most of these and ``ValueError`` for some (input rank, dtype), so ``except`` clauses written
    for either catch it, as they catch torch's. Messages start with torch's own wording for the
    same misuse, then say what to do.
    """


def apply_init_options(
    module: nn.Module, forget_bias: float, recurrent_init: str, input_bias: float = 0.0
) -> None:
    """Initialisation options both backends honour (they change values, not the computation).

    ``forget_bias`` is added to the forget-gate slice ``[hidden:2*hidden]`` of every ``bias_ih``
    and ``input_bias`` to its input-gate slice ``[0:hidden]`` (a negative input bias keeps the
    cells closed to distractors until a gate learns to open: Hochreiter & Schmidhuber 1997 used
    -3 and -6; with ``forget_bias = -input_bias`` it is the spirit of Tallec & Ollivier's 2018
    chrono init); ``recurrent_init="orthogonal"`` draws each gate's block of ``weight_hh``
    orthogonal (Saxe et al. 2014).
    """
    if recurrent_init not in ("default", "orthogonal"):
        raise ValueError(
            f"recurrent_init must be 'default' or 'orthogonal', got {recurrent_init!r}"
        )
    for name, shift in (("forget_bias", forget_bias), ("input_bias", input_bias)):
        if shift and not module.bias:
            raise ValueError(f"{name}={shift} needs bias=True (there is no bias to shift)")
    hidden = module.hidden_size
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.startswith("bias_ih_l"):
                param[:hidden] += input_bias
                param[hidden : 2 * hidden] += forget_bias
            if recurrent_init == "orthogonal" and name.startswith("weight_hh_l"):
                for gate in range(4):
                    nn.init.orthogonal_(param[gate * hidden : (gate + 1) * hidden])


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


class LSTMBase(nn.Module):
    """Common interface of lstmkit's LSTMs: ``torch.nn.LSTM``'s arguments, shapes and meaning.

    Subclasses set the torch.nn.LSTM attributes (``input_size``, ``hidden_size``, ``num_layers``,
    ``bias``, ``batch_first``, ``dropout``, ``bidirectional``, ``proj_size``) and implement
    `_run`.
    """

    input_size: int
    hidden_size: int
    num_layers: int
    bias: bool
    batch_first: bool
    dropout: float
    bidirectional: bool
    proj_size: int

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def state_size(self) -> int:
        """Size of ``h``: ``proj_size`` if set, else ``hidden_size``."""
        return self.proj_size if self.proj_size > 0 else self.hidden_size

    @property
    def output_size(self) -> int:
        """Feature size of ``output``: ``num_directions * (proj_size or hidden_size)``."""
        return self.num_directions * self.state_size

    # ------------------------------------------------------------------ the one forward
    def forward(
        self,
        input: Tensor | PackedSequence,
        hx: State | None = None,
        *,
        lengths: Lengths | None = None,
    ) -> tuple[Tensor | PackedSequence, State]:
        """Run the LSTM over a sequence.

        Args:
            input: ``(T, B, input_size)`` (``(B, T, input_size)`` if ``batch_first``), unbatched
                ``(T, input_size)``, or a ``PackedSequence``.
            hx: optional ``(h_0, c_0)``, shapes ``(num_layers * num_directions, B, proj_size or
                hidden_size)`` and ``(num_layers * num_directions, B, hidden_size)`` (no batch
                dimension for unbatched input). Zeros when omitted.
            lengths: optional valid length of each sequence (1-D tensor or list of ints, any
                order, any device). Gives the same numbers as packing: padded steps of
                ``output`` are zero, ``h_n``/``c_n`` are each sequence's states at its own last
                step, and the reverse direction starts at each sequence's last valid step.

        Returns:
            ``(output, (h_n, c_n))``: ``output`` is ``(T, B, output_size)`` (batch-first if
            ``batch_first``; packed if the input was packed); ``h_n``/``c_n`` have ``h_0``'s and
            ``c_0``'s shapes.
        """
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise LSTMInputError(
                    "pass either a PackedSequence or lengths=, not both (a PackedSequence "
                    "already carries its lengths)"
                )
            self._check_features(input.data, expected_dim=2)
            batch = int(input.batch_sizes[0])
            hx = self._state_or_zeros(hx, batch, input.data, batched=True)
            return self._run_packed(input, hx)

        if not isinstance(input, Tensor):
            raise TypeError(f"input must be a Tensor or PackedSequence, got {type(input).__name__}")
        if input.dim() not in (2, 3):
            raise LSTMInputError(
                f"LSTM: Expected input to be 2D or 3D, got {input.dim()}D instead: input must "
                f"be 3-D (seq, batch, features) or 2-D unbatched (seq, features), got shape "
                f"{_shape(input)}"
            )
        self._check_features(input, expected_dim=input.dim())
        batched = input.dim() == 3
        if batched:
            x = input.transpose(0, 1) if self.batch_first else input
        else:
            x = input.unsqueeze(1)
        seq_len, batch = x.shape[0], x.shape[1]
        hx = self._state_or_zeros(hx, batch, x, batched=batched)
        lengths_cpu = None if lengths is None else self._check_lengths(lengths, batch, seq_len)
        compiling = torch.compiler.is_compiling()  # no data-dependent branch in a graph
        if lengths_cpu is not None and not compiling and bool((lengths_cpu == seq_len).all()):
            lengths_cpu = None  # every sequence is full: the plain path gives the same numbers

        output, (h_n, c_n) = self._run(x, hx, lengths_cpu)

        if not batched:
            return output.squeeze(1), (h_n.squeeze(1), c_n.squeeze(1))
        if self.batch_first:
            output = output.transpose(0, 1)
        return output, (h_n, c_n)

    # ------------------------------------------------------------------ backend hooks
    def _run(self, x: Tensor, hx: State, lengths: Tensor | None) -> tuple[Tensor, State]:
        """Backend recurrence on time-major input.

        Args:
            x: ``(T, B, input_size)``.
            hx: ``(h_0, c_0)``, validated, ``(L*D, B, ·)``.
            lengths: ``None`` (all sequences full) or a CPU int64 ``(B,)`` tensor, 1 <= len <= T.

        Returns:
            ``(output (T, B, output_size), (h_n, c_n))``, padded steps of ``output`` zero.
        """
        raise NotImplementedError

    def _run_packed(self, packed: PackedSequence, hx: State) -> tuple[PackedSequence, State]:
        """Default packed path: unpack, run with lengths, pack again with the same layout."""
        padded, lengths = pad_packed_sequence(packed)
        output, state = self._run(padded, hx, lengths)
        sorted_indices = packed.sorted_indices
        if sorted_indices is not None:
            output = output.index_select(1, sorted_indices)
            lengths = lengths.index_select(0, sorted_indices.cpu())
        data = pack_padded_sequence(output, lengths, enforce_sorted=True).data
        out = PackedSequence(data, packed.batch_sizes, sorted_indices, packed.unsorted_indices)
        return out, state

    # ------------------------------------------------------------------ validation
    def _check_features(self, x: Tensor, expected_dim: int) -> None:
        if x.size(-1) != self.input_size:
            raise LSTMInputError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got "
                f"{x.size(-1)}: the input has {x.size(-1)} features in its last dimension (shape "
                f"{_shape(x)}) but this LSTM was built with input_size={self.input_size}"
            )
        time_dim = 1 if x.dim() == 3 and self.batch_first else 0
        if expected_dim >= 2 and x.dim() >= 2 and x.size(time_dim) == 0:
            raise LSTMInputError(
                f"Expected sequence length to be larger than 0 in RNN: the input has zero time "
                f"steps (shape {_shape(x)}); every sequence needs at least one step"
            )
        weight = self.weight_ih_l0
        if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
            raise LSTMInputError(
                f"RNN input dtype ({x.dtype}) does not match weight dtype ({weight.dtype}). "
                f"Convert input: input.to({weight.dtype}), or convert model: "
                f"model.to({x.dtype})"
            )

    def _state_or_zeros(self, hx: State | None, batch: int, like: Tensor, batched: bool) -> State:
        rows = self.num_layers * self.num_directions
        h_shape = (rows, batch, self.state_size)
        c_shape = (rows, batch, self.hidden_size)
        if hx is None:
            return like.new_zeros(h_shape), like.new_zeros(c_shape)
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise LSTMInputError(
                "lstm expects two hidden states: hx must be a pair (h_0, c_0) of tensors"
            )
        h0, c0 = hx
        rank = 3 if batched else 2
        if h0.dim() != rank or c0.dim() != rank:
            kind = "batched 3-D" if batched else "unbatched 2-D"
            raise LSTMInputError(
                f"For {kind} input, hx and cx should also be {rank}-D but got ({h0.dim()}-D, "
                f"{c0.dim()}-D) tensors: shapes (num_layers * num_directions, "
                f"{'batch, ' if batched else ''}features)"
            )
        if not batched:
            h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
        for name, t, expected, what in (
            ("h_0", h0, h_shape, "proj_size or hidden_size"),
            ("c_0", c0, c_shape, "hidden_size"),
        ):
            if _shape(t) != expected:
                got = _shape(t) if batched else (t.shape[0], t.shape[2])
                want = expected if batched else (expected[0], expected[2])
                index = 0 if name == "h_0" else 1
                raise LSTMInputError(
                    f"Expected hidden[{index}] size {want}, got {list(got)}: {name} must be "
                    f"(num_layers * num_directions, {'batch, ' if batched else ''}{what})"
                )
        for name, t in (("h_0", h0), ("c_0", c0)):
            if t.device != like.device:
                raise LSTMInputError(
                    f"Input and hidden tensors are not at the same device, found input tensor at "
                    f"{like.device} and hidden tensor ({name}) at {t.device}"
                )
            if t.dtype != like.dtype and not torch.is_autocast_enabled(like.device.type):
                raise LSTMInputError(
                    f"Input and hidden tensors are not the same dtype, found input tensor with "
                    f"{like.dtype} and hidden tensor ({name}) with {t.dtype}: convert {name} "
                    f"with .to({like.dtype})"
                )
        return h0, c0

    @staticmethod
    def _check_lengths(lengths: Lengths, batch: int, seq_len: int) -> Tensor:
        if isinstance(lengths, Tensor):
            if lengths.dim() != 1:
                raise LSTMInputError(f"lengths must be 1-D, got shape {_shape(lengths)}")
            if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
                raise LSTMInputError(f"lengths must hold integers, got dtype {lengths.dtype}")
            lengths_cpu = lengths.detach().to("cpu", torch.int64)
        else:
            lengths_cpu = torch.as_tensor(list(lengths), dtype=torch.int64)
        if lengths_cpu.numel() != batch:
            raise LSTMInputError(
                f"lengths has {lengths_cpu.numel()} entries but the batch has {batch} sequences"
            )
        if torch.compiler.is_compiling():  # values are data: checked in eager runs only
            return lengths_cpu
        if batch and int(lengths_cpu.min()) <= 0:
            index = int(lengths_cpu.argmin())
            raise LSTMInputError(
                f"lengths must be >= 1, got {int(lengths_cpu[index])} for sequence {index}"
            )
        if batch and int(lengths_cpu.max()) > seq_len:
            index = int(lengths_cpu.argmax())
            raise LSTMInputError(
                f"lengths must be <= the sequence length {seq_len}, got "
                f"{int(lengths_cpu[index])} for sequence {index}"
            )
        return lengths_cpu

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


def default_init_bound(hidden_size: int) -> float:
    """torch.nn.LSTM's initialisation bound: parameters ~ U(-1/sqrt(hidden), 1/sqrt(hidden))."""
    return 1.0 / math.sqrt(hidden_size)
