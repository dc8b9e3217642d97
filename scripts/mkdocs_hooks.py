"""mkdocs hook: the speed tables of the docs, generated from ``benchmarks/*.json`` at build time.

A page writes ``<!-- benchmark: nn_cpu.json fwd+bwd -->`` where a table belongs; the hook puts
the table of that file in its place (one row per shape, one column per candidate: the median
time of ``torch.nn.LSTM`` and every other candidate's ratio to it). Nothing is pasted by hand,
so a new benchmark run updates the docs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
MARKER = re.compile(r"<!-- benchmark: (?P<file>[\w.-]+\.json) (?P<metric>fwd\+bwd|fwd) -->")


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:,.0f} ms" if ms >= 100 else f"{ms:.1f} ms"


def benchmark_table(name: str, metric: str) -> str:
    """The markdown table of ``benchmarks/<name>`` for ``metric`` (``fwd`` or ``fwd+bwd``)."""
    path = BENCHMARKS / name
    if not path.is_file():
        raise FileNotFoundError(f"benchmark table: {path} does not exist")
    data = json.loads(path.read_text())
    rows: dict[tuple[int, ...], dict[str, Any]] = {}
    candidates: list[str] = []
    for result in data["results"]:
        shape = tuple(result["shape"])
        rows.setdefault(shape, {})[result["candidate"]] = result
        if result["candidate"] not in candidates:
            candidates.append(result["candidate"])
    others = [c for c in candidates if c != "torch"]
    header = ["shape (B, T, C, H, layers)", "`torch.nn.LSTM`", *[f"`{c}`" for c in others]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for shape, results in rows.items():
        cells = [str(shape), _ms(results["torch"]["median_s"][metric])]
        for c in others:
            r = results.get(c)
            cells.append(
                "—"
                if r is None
                else f"{r['ratio_to_torch'][metric]:.2f}× ({_ms(r['median_s'][metric])})"
            )
        lines.append("| " + " | ".join(cells) + " |")
    meta = data["meta"]
    lengths = "variable lengths" if meta.get("variable_lengths") else "full lengths"
    lines.append("")
    lines.append(
        f"*{metric}, medians of {meta['rounds']} interleaved rounds; ratio to `torch.nn.LSTM` "
        f"(lower is faster); {lengths}; torch {meta['torch']}, {meta['threads']} threads; "
        f"native kernels: {meta['native_kernels']}. Generated from `benchmarks/{name}`.*"
    )
    return "\n".join(lines)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """mkdocs event: replace every benchmark marker of a page with its table."""
    return MARKER.sub(lambda m: benchmark_table(m["file"], m["metric"]), markdown)
