"""A convolutional front end that shortens long sequences before an LSTM.

For sequences of hundreds of steps, a few strided 1-D convolutions (as in the convolutional
branch of LSTM-FCN, Karim et al. 2018, "LSTM Fully Convolutional Networks for Time Series
Classification", and in CNN-LSTM hybrids) turn ``T`` steps into about ``T / stride**num_layers``
local-feature steps; the LSTM then back-propagates through far fewer steps.

Padded, variable-length batches: every block zeroes the padded steps of its input before its
convolution, and the norm is per step (a ``LayerNorm`` over channels, never statistics over the
batch or time), so each sequence's valid outputs are the same alone or in a padded batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit._validation import check_float, check_int

#: The keys of a front-end config (``ConvFrontEnd``'s arguments after ``input_size``).
FRONTEND_KEYS = ("channels", "kernel_size", "stride", "num_layers", "norm", "dropout")


def conv_lengths(lengths: Tensor, kernel_size: int, stride: int, padding: int) -> Tensor:
    """Valid steps after a ``Conv1d``: ``floor((L + 2p - k) / s) + 1``, at least 1.

    Args:
        lengths: ``(B,)`` int valid steps (or a 0-d tensor, e.g. the padded length ``T``).

    Returns:
        ``(B,)`` int64 (the same shape as ``lengths``).
    """
    out = torch.div(lengths.long() + 2 * padding - kernel_size, stride, rounding_mode="floor")
    return (out + 1).clamp_min(1)


class ConvFrontEnd(nn.Module):
    """``num_layers`` blocks of ``Conv1d(stride) -> LayerNorm -> ReLU -> Dropout`` on
    batch-first sequences, shortening ``T`` by about ``stride`` per block.

    Each convolution pads ``kernel_size // 2`` steps on both sides, so a block maps ``L``
    valid steps to ``floor((L + 2 * (kernel_size // 2) - kernel_size) / stride) + 1`` (at
    least 1), e.g. ``ceil(L / 2)`` for ``kernel_size=5, stride=2``.

    Args:
        input_size: features per input step ``C``.
        channels: convolution channels, the output features per step (the LSTM's
            ``input_size``).
        kernel_size: steps each convolution reads.
        stride: step of each convolution (1 keeps the length: local features only).
        num_layers: convolution blocks; the length shrinks about ``stride ** num_layers``-fold.
        norm: a ``LayerNorm`` over the channels of each step after each convolution.
        dropout: dropout after each block's activation.

    Shapes: ``x (B, T, C)`` and ``lengths (B,)`` (or None) in, ``y (B, T', channels)`` and
    ``lengths' (B,)`` out, with ``T' = output_length(T)``; see :meth:`forward`.

    Example:
        >>> front = ConvFrontEnd(3, channels=16, kernel_size=5, stride=2, num_layers=2)
        >>> y, lengths = front(torch.randn(4, 150, 3), torch.tensor([150, 120, 33, 1]))
        >>> y.shape, lengths.tolist()
        (torch.Size([4, 38, 16]), [38, 30, 9, 1])
    """

    def __init__(
        self,
        input_size: int,
        channels: int = 64,
        kernel_size: int = 5,
        stride: int = 2,
        num_layers: int = 2,
        norm: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_size = check_int("input_size", input_size)
        self.channels = check_int("channels", channels)
        self.kernel_size = check_int("kernel_size", kernel_size)
        self.stride = check_int("stride", stride)
        self.num_layers = check_int("num_layers", num_layers)
        if not isinstance(norm, bool):
            raise TypeError(f"norm={norm!r}: must be true or false")
        self.dropout = check_float("dropout", dropout, low=0.0, high=1.0, high_inclusive=False)
        self.padding = self.kernel_size // 2
        sizes = [self.input_size] + [self.channels] * self.num_layers
        self.convs = nn.ModuleList(
            nn.Conv1d(sizes[i], sizes[i + 1], self.kernel_size, self.stride, self.padding)
            for i in range(self.num_layers)
        )
        self.norms = nn.ModuleList(
            nn.LayerNorm(self.channels) if norm else nn.Identity() for _ in range(self.num_layers)
        )

    @property
    def output_size(self) -> int:
        """Features per output step (``channels``)."""
        return self.channels

    def output_length(self, lengths: Tensor | int) -> Tensor | int:
        """Valid steps after every block: the conv length formula applied ``num_layers`` times
        (an int for an int, else an int64 tensor of the same shape)."""
        out = torch.as_tensor(lengths)
        for _ in range(self.num_layers):
            out = conv_lengths(out, self.kernel_size, self.stride, self.padding)
        return int(out) if isinstance(lengths, int) else out

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Shorten a batch of sequences.

        Args:
            x: ``(B, T, C)`` float features.
            lengths: ``(B,)`` integer valid steps per sequence, or None when all fill ``T``.

        Returns:
            ``(y, lengths')``: ``y`` ``(B, T', channels)`` with ``T' = output_length(T)``,
            zero at each sequence's padded steps, and ``lengths'`` the ``(B,)`` int64 valid
            steps of ``y`` (None when ``lengths`` is None).
        """
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"ConvFrontEnd: x has shape {tuple(x.shape)}, expected (batch, time, "
                f"input_size={self.input_size})"
            )
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=x.device).long()  # (B,)
            if lengths.shape != (x.shape[0],):
                raise ValueError(
                    f"ConvFrontEnd: lengths has shape {tuple(lengths.shape)}, expected "
                    f"(batch,) = ({x.shape[0]},)"
                )
            if not torch.compiler.is_compiling():  # as the encoder would without a front end
                low, high = (int(v) for v in torch.aminmax(lengths))
                if low < 1 or high > x.shape[1]:
                    raise ValueError(
                        f"ConvFrontEnd: lengths must lie in [1, T={x.shape[1]}], got values in "
                        f"[{low}, {high}]"
                    )
        for conv, norm in zip(self.convs, self.norms, strict=True):
            if lengths is not None:  # padded steps read as zeros, however many there are
                keep = torch.arange(x.shape[1], device=x.device) < lengths.unsqueeze(1)  # (B, T)
                x = x.masked_fill(~keep.unsqueeze(-1), 0.0)
            x = conv(x.transpose(1, 2)).transpose(1, 2)  # (B, T, C) -> (B, T', channels)
            x = F.relu(norm(x))
            x = F.dropout(x, self.dropout, self.training)
            if lengths is not None:
                lengths = conv_lengths(lengths, self.kernel_size, self.stride, self.padding)
        if lengths is not None:  # zero at the padded steps of the output too
            keep = torch.arange(x.shape[1], device=x.device) < lengths.unsqueeze(1)
            x = x.masked_fill(~keep.unsqueeze(-1), 0.0)
        return x, lengths

    def extra_repr(self) -> str:
        return f"shortens T about {self.stride**self.num_layers}-fold"


def build_frontend(input_size: int, config: Mapping[str, Any] | None) -> ConvFrontEnd | None:
    """A :class:`ConvFrontEnd` from a config mapping (keys :data:`FRONTEND_KEYS`, missing ones
    at their defaults; a Hydra ``_target_`` key is ignored), or None for None (no front end).

    Raises:
        TypeError: ``config`` is not a mapping.
        ValueError: an unknown key (names it and the allowed keys).
    """
    if config is None:
        return None
    if not isinstance(config, Mapping):
        raise TypeError(
            f"frontend={config!r}: must be a mapping of {', '.join(FRONTEND_KEYS)} (or null)"
        )
    kwargs = {k: v for k, v in config.items() if k != "_target_"}
    unknown = sorted(set(kwargs) - set(FRONTEND_KEYS))
    if unknown:
        raise ValueError(
            f"{unknown[0]}={kwargs[unknown[0]]!r}: not a front-end option; the options are "
            f"{', '.join(FRONTEND_KEYS)}"
        )
    return ConvFrontEnd(input_size, **kwargs)
