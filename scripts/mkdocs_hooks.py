"""mkdocs hook: the benchmark tables of the docs, generated from ``benchmarks/*.json`` at build time.

A page writes ``<!-- benchmark: nn_cpu.json fwd+bwd -->`` where a speed table belongs; the hook
puts the table of that file in its place (one row per shape, one column per candidate: the
median time of ``torch.nn.LSTM`` and every other candidate's ratio to it).
``<!-- defaults: defaults_before.json defaults_after.json -->`` becomes the before/after table
of ``scripts/benchmark_defaults.py``. Nothing is pasted by hand, so a new benchmark run updates
the docs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
MARKER = re.compile(r"<!-- benchmark: (?P<file>[\w.-]+\.json) (?P<metric>fwd\+bwd|fwd) -->")
DEFAULTS = re.compile(r"<!-- defaults: (?P<before>[\w.-]+\.json) (?P<after>[\w.-]+\.json) -->")


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
    clock = "CPU time, " if meta.get("clock") == "cpu" else ""
    lines.append("")
    lines.append(
        f"*{metric}, {clock}medians of {meta['rounds']} interleaved rounds; ratio to `torch.nn.LSTM` "
        f"(lower is faster); {lengths}; torch {meta['torch']}, {meta['threads']} threads; "
        f"native kernels: {meta['native_kernels']}. Generated from `benchmarks/{name}`.*"
    )
    return "\n".join(lines)


def _load(name: str) -> dict[str, Any]:
    path = BENCHMARKS / name
    if not path.is_file():
        raise FileNotFoundError(f"benchmark table: {path} does not exist")
    return json.loads(path.read_text())


def _value(row: dict[str, Any] | None) -> str:
    if row is None:
        return "—"
    if row.get("value") is None:
        return "failed"
    return f"{row['value']:.3f}"


def defaults_table(before_name: str, after_name: str) -> str:
    """Before/after table of ``scripts/benchmark_defaults.py``: one row per dataset, the metric
    of each backend before and after, the references, the naive baseline, the goal and the
    wall time after."""
    before, after = _load(before_name), _load(after_name)

    def index(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
        return {(r["dataset"], r["backend"]): r for r in data["rows"]}

    old, new = index(before), index(after)
    datasets = list(dict.fromkeys(r["dataset"] for r in after["rows"]))
    header = ["dataset", "metric", "before (custom / cudnn)", "after (custom / cudnn)",
              "1-NN DTW", "LSTM-FCN", "naive", "goal met after", "wall s after"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in datasets:
        rows = [new.get((name, b)) for b in ("custom", "cudnn")]
        first = next(r for r in rows if r is not None)
        ref = first.get("reference") if first["metric"] == "acc" else None
        fcn = first.get("lstm_fcn")
        goals = " / ".join("—" if r is None else str(r.get("goal")) for r in rows)
        walls = " / ".join("—" if r is None else f"{r['seconds']:.0f}" for r in rows)
        cells = [
            name,
            first["metric"],
            " / ".join(_value(old.get((name, b))) for b in ("custom", "cudnn")),
            " / ".join(_value(r) for r in rows),
            "—" if ref is None else f"{ref:.3f}",
            "—" if fcn is None else f"{fcn:.3f}",
            "—" if first.get("naive") is None else f"{first['naive']:.3f}",
            goals,
            walls,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    env, load = after["environment"], after["load_average_1min"]
    lines.append("")
    lines.append(
        f"*After: torch {env['torch']}, CPU ISA {env['cpu_capability']}, {env['cpus']} CPUs, "
        f"1-minute load average {load['start']:.2f} at the start and {load['end']:.2f} at the "
        f"end, {after['total_seconds']:.0f} s in all. Generated from `benchmarks/{before_name}` "
        f"and `benchmarks/{after_name}`.*"
    )
    return "\n".join(lines)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """mkdocs event: replace every benchmark marker of a page with its table."""
    markdown = DEFAULTS.sub(lambda m: defaults_table(m["before"], m["after"]), markdown)
    return MARKER.sub(lambda m: benchmark_table(m["file"], m["metric"]), markdown)
