"""How fast the commands answer before any work: ``--help``, ``--cfg job`` and a refused value.

Each command line runs ``--repeat`` times in a fresh process (the console scripts beside this
Python, as an installed lstmkit has them); the table gives the median and the range of the wall
times, and each line's exit status. Goals: ``--help`` and ``--cfg job`` under 1 s, a bad value
refused in under 1 s on an idle machine. A bare ``--help`` answers from the config files
without Hydra (``lstmkit.runtime.quick_help``); ``--help`` with overrides is Hydra's own help,
which composes every group (no goal). The 1-minute load average is printed beside the table:
other processes on the cores slow every line. The tests check the behaviour behind these figures
(nothing heavy imported, one line and exit 2), never the times.

    python scripts/benchmark_latency.py                # median of 5
    python scripts/benchmark_latency.py --repeat 9 --json latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: (command, arguments, the exit status it should end with)
CASES = [
    ("lstmkit-train", ["--help"], 0),
    ("lstmkit-train", ["--cfg", "job"], 0),
    ("lstmkit-train", ["data.seq_len=-5"], 2),
    ("lstmkit-train", ["model.encoder.backend=lstm"], 2),
    ("lstmkit-train", ["model.encoder.hidden_size=0"], 2),
    ("lstmkit-train", ["model.optimizer.lr=-1"], 2),
    ("lstmkit-eval", ["--help"], 0),
    ("lstmkit-predict", ["--help"], 0),
    ("lstmkit-predict", ["batch_size=0"], 2),
    ("lstmkit-ensemble", ["--help"], 0),
    ("lstmkit-inspect", ["--help"], 0),
    ("lstmkit-robustness", ["--help"], 0),
    ("lstmkit-export", ["--help"], 0),
    ("lstmkit-train", ["data=sine", "--help"], 0),  # with overrides: Hydra's own help
]


def time_once(args: list[str]) -> tuple[float, int]:
    """Wall time (s) and exit status of one run, from the repository root."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    start = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return time.perf_counter() - start, done.returncode


def _load_average() -> tuple[float, float, float]:
    """The 1-, 5- and 15-minute load averages (zeros where the platform has none)."""
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command line")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    load = _load_average()
    rows = []
    for command, extra, expected in CASES:
        executable = BIN / command
        if not executable.exists():
            print(f"skipped: {executable} is not installed", file=sys.stderr)
            continue
        runs = [time_once([str(executable), *extra]) for _ in range(args.repeat)]
        seconds = [s for s, _ in runs]
        codes = sorted({code for _, code in runs})
        rows.append(
            {
                "command": " ".join([command, *extra]),
                "median_s": statistics.median(seconds),
                "min_s": min(seconds),
                "max_s": max(seconds),
                "exit": codes,
                "expected_exit": expected,
            }
        )

    print(f"median of {args.repeat} runs; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, "
          f"1-minute load {load[0]:.2f} before -> {_load_average()[0]:.2f} after")  # fmt: skip
    width = max((len(r["command"]) for r in rows), default=10)
    print(f"{'command':<{width}}  median (s)  range (s)    exit")
    for r in rows:
        flag = "" if r["exit"] == [r["expected_exit"]] else f"  (expected {r['expected_exit']})"
        codes = ",".join(str(c) for c in r["exit"])
        print(
            f"{r['command']:<{width}}  {r['median_s']:10.2f}  "
            f"{r['min_s']:.2f}-{r['max_s']:.2f}    {codes}{flag}"
        )
    if args.json:
        meta = {
            "repeat": args.repeat,
            "python": platform.python_version(),
            "cores": os.cpu_count(),
            "load_1min": [load[0], _load_average()[0]],
        }
        args.json.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
