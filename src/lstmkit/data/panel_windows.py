"""Windows over a panel (many series in one ``(N, C)`` array), addressed by index: nothing
is copied per window. :class:`PanelWindows` maps a flat window index to (series, target row)
with ``O(S)`` memory; :class:`PanelWindowDataset` gathers a batch's rows; :class:`StreamingWindows`
yields the training batches of a Parquet folder one file at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, IterableDataset


class PanelWindows:
    """Windows of many series addressed by a flat index, with ``O(S)`` memory.

    Series ``k`` (of the series that have windows in this split) has ``count[k]`` windows whose
    first target rows are ``first[k] + stride * j``; window ``i`` is found by a binary search
    in the running counts.

    Args:
        series: ``(S',)`` int64 series index of each series with windows.
        begin: ``(S',)`` int64 its first row (inputs never reach before it).
        first: ``(S',)`` int64 global row of its first window's first target row.
        count: ``(S',)`` int64 its number of windows.
        stride: rows between consecutive windows of a series.
        explicit: ``(M, 2)`` int64 ``(series, first target row)`` pairs instead (windows left
            out for a missing target), or None.
    """

    def __init__(
        self,
        series: np.ndarray,
        begin: np.ndarray,
        first: np.ndarray,
        count: np.ndarray,
        stride: int,
        explicit: np.ndarray | None = None,
    ) -> None:
        keep = count > 0
        self.series = torch.as_tensor(series[keep], dtype=torch.long)
        self.begin = torch.as_tensor(begin[keep], dtype=torch.long)
        self.first = torch.as_tensor(first[keep], dtype=torch.long)
        self.cum = torch.as_tensor(np.r_[0, np.cumsum(count[keep])], dtype=torch.long)
        self.stride = stride
        self.explicit = None if explicit is None else torch.as_tensor(explicit, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.explicit) if self.explicit is not None else int(self.cum[-1])

    def locate(self, idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(series, first row of the series, first target row)`` of windows ``idx``, each
        ``(B,)``."""
        if self.explicit is not None:
            pairs = self.explicit[idx]
            return pairs[:, 0], pairs[:, 1], pairs[:, 2]
        k = torch.searchsorted(self.cum, idx, right=True) - 1  # (B,)
        t0 = self.first[k] + self.stride * (idx - self.cum[k])
        return self.series[k], self.begin[k], t0

    def all(self) -> tuple[Tensor, Tensor, Tensor]:
        return self.locate(torch.arange(len(self)))


class PanelWindowDataset(Dataset):
    """Batches ``(x, y, lengths)`` of panel windows, gathered by indexing.

    Args:
        values: ``(N, C_v)`` the scaled value channels of every row (targets first).
        targets: ``(N, O)`` the scaled targets (a view of ``values`` when they are inputs).
        per_series: ``(S, C_s)`` channels constant within each series (static covariates,
            category codes, then center/scale/naive of each target), repeated along time.
        windows: the split's :class:`PanelWindows`.
        window, horizon: input rows (at most) and target rows of each window.
        future_blank: with covariates known in advance, the number of leading value channels
            (the targets) zeroed in the ``horizon`` forecast rows appended to the inputs; None:
            the inputs stop at the window.

    ``x`` ``(B, T, C_v + C_s)`` with ``T`` the batch's longest input (``window`` unless short
    series are padded: then valid rows first, zeros after ``lengths``; ``window + horizon``
    with ``future_blank``), ``y`` ``(B, O)`` if ``horizon == 1`` else ``(B, horizon, O)``,
    ``lengths`` ``(B,)``.
    """

    per_step = False

    def __init__(
        self,
        values: Tensor,
        targets: Tensor,
        per_series: Tensor,
        windows: PanelWindows,
        window: int,
        horizon: int,
        future_blank: int | None = None,
    ) -> None:
        self.values, self.targets, self.per_series = values, targets, per_series
        self.windows, self.window, self.horizon = windows, window, horizon
        self.future_blank = future_blank
        self.extra = horizon if future_blank is not None else 0  # forecast rows in the inputs

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def lengths(self) -> Tensor:
        _series, begin, t0 = self.windows.all()
        return t0 - torch.maximum(t0 - self.window, begin) + self.extra

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        x, y, lengths = self.__getitems__([index])
        return x[0], y[0], lengths[0]

    def __getitems__(self, indices: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        series, begin, t0 = self.windows.locate(idx)
        start = torch.maximum(t0 - self.window, begin)  # (B,) never before the series
        lengths = t0 - start + self.extra  # (B,)
        steps = int(lengths.max())
        offsets = torch.arange(steps)
        rows = start.unsqueeze(1) + offsets  # (B, T)
        valid = offsets < lengths.unsqueeze(1)  # (B, T)
        x = self.values[rows.clamp_max(len(self.values) - 1)]  # (B, T, C_v)
        if self.future_blank is not None:  # the forecast rows' targets are unknown: zeros
            x[:, self.window :, : self.future_blank] = 0.0  # full windows (skip rule)
        side = self.per_series[series].unsqueeze(1).expand(-1, steps, -1)  # (B, T, C_s)
        x = torch.cat([x, side], dim=-1) * valid.unsqueeze(-1)
        y = self.targets[t0.unsqueeze(1) + torch.arange(self.horizon)]  # (B, H, O)
        return x, (y[:, 0] if self.horizon == 1 else y), lengths


class StreamingWindows(IterableDataset):
    """The training windows of a folder of Parquet files, read one file at a time: each
    epoch visits the files in a seeded order and yields batches of ``batch_size`` windows
    shuffled within the file; only the file being read is in memory.

    Args:
        datamodule: the :class:`PanelDataModule` whose reading and scaling is applied.
        files: the Parquet files.
    """

    def __init__(self, datamodule: Any, files: list[str], batches: int) -> None:
        self.datamodule, self.files, self.epoch, self.batches = datamodule, files, 0, batches
        #: The rows of the largest file read so far (what bounds the memory).
        self.max_rows_in_memory = 0

    def __len__(self) -> int:
        """Batches per epoch (what the iterator yields)."""
        return self.batches

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        dm = self.datamodule
        generator = torch.Generator().manual_seed(dm.seed + self.epoch)
        self.epoch += 1
        for f in torch.randperm(len(self.files), generator=generator).tolist():
            panel, values = dm._read(self.files[f])
            self.max_rows_in_memory = max(self.max_rows_in_memory, len(values))
            part = dm._assemble(panel, values, self.files[f], fit=False, need_all=False,
                                year0=dm.fitted["calendar_year0"])  # fmt: skip
            train = part["splits"]["train"]
            del panel, part
            order = torch.randperm(len(train), generator=generator)
            for start in range(0, len(train), dm.batch_size):
                yield train.__getitems__(order[start : start + dm.batch_size].tolist())


def cat_padded(parts: list[Tensor]) -> Tensor:
    """Concatenate ``(B_i, T_i, C)`` along the batch, zero-padded to the longest ``T``."""
    steps = max(p.shape[1] for p in parts)
    return torch.cat([torch.nn.functional.pad(p, (0, 0, 0, steps - p.shape[1])) for p in parts])


__all__ = ["PanelWindowDataset", "PanelWindows", "StreamingWindows", "cat_padded"]
