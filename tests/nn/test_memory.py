"""Huge-page backed buffers: same tensors as new_empty/new_zeros, and huge pages where THP is on."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
import torch

from lstmkit.nn import memory


@pytest.mark.parametrize("numel", [10, (memory.MIN_BYTES // 4) + 12345])
def test_empty_is_a_plain_buffer(numel):
    like = torch.ones(3, dtype=torch.float64)
    zeroed = memory.empty(like, numel // 5, 5, zero=True)
    assert zeroed.shape == (numel // 5, 5) and zeroed.dtype == torch.float64
    assert zeroed.is_contiguous() and not zeroed.any()
    filled = memory.empty_like(zeroed).fill_(2.0)
    assert filled.shape == zeroed.shape and bool((filled == 2.0).all())


def _anon_huge_kib(address: int) -> int:
    """AnonHugePages of the mapping that holds ``address`` (from /proc/self/smaps)."""
    inside, huge = False, 0
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and all(c in "0123456789abcdef-" for c in head):
            start, end = (int(v, 16) for v in head.split("-"))
            inside = start <= address < end
        elif inside and line.startswith("AnonHugePages:"):
            huge = int(line.split()[1])
    return huge


def test_large_buffers_get_huge_pages_where_the_kernel_offers_them(monkeypatch):
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if platform.system() != "Linux" or not thp.exists() or "[never]" in thp.read_text():
        pytest.skip("no transparent huge pages here")
    buffer = memory.empty(torch.empty(0), memory.MIN_BYTES // 4 + (4 << 20), zero=True)
    assert _anon_huge_kib(buffer.data_ptr() + memory.HUGE_PAGE * 2) > 0
    monkeypatch.setattr(memory, "USE_HUGE_PAGES", False)
    plain = memory.empty(torch.empty(0), memory.MIN_BYTES // 4 + (4 << 20), zero=True)
    if "[always]" not in thp.read_text():  # without the advice: 4 KiB pages
        assert _anon_huge_kib(plain.data_ptr() + memory.HUGE_PAGE * 2) == 0
