"""Memory of CSVDataModule windows over a long series: strided views cost ~nothing.

Writes a ``rows``-row series (one target, ``features`` covariates) to a Parquet file in a
temporary folder, runs ``CSVDataModule.setup()`` and reports, in MB: the series' own size
(float32), the extra storage of the windows, peak RSS growth during setup, and the time of a
pass over 200 batches. Each measurement runs in a fresh process so peaks do not mix.

    python scripts/benchmark_windows.py                 # 10 million rows, window 128
    python scripts/benchmark_windows.py --rows 1000000 --window 64 --features 3
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(path: str, window: int, features: int) -> dict[str, float]:
    """In this process: setup the datamodule and measure (run in a child process)."""
    import pandas  # libraries loaded before the baseline: their code is not data
    import pyarrow.parquet  # noqa: F401
    import torch

    from lstmkit.data import CSVDataModule

    feature_names = [f"x{i}" for i in range(features)]
    # warm-up on 1000 rows: lazy imports and first-call initialisation are not data
    warm = Path(path).with_name("warmup.parquet")
    pandas.read_parquet(path).iloc[:1000].to_parquet(warm)
    CSVDataModule(str(warm), target="y", features=feature_names, window=window).setup()
    before = _rss_mb()
    start = time.perf_counter()
    dm = CSVDataModule(path, target="y", features=feature_names, window=window, batch_size=256)
    dm.setup()
    setup_s = time.perf_counter() - start
    after = _rss_mb()
    peak = _peak_mb()
    try:  # hand glibc's free memory back, to see what the data itself holds
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    trimmed = _rss_mb()
    train = dm.splits["train"]
    series = train.inputs
    views = {id(s.x.untyped_storage()) for s in dm.splits.values()}
    shared = all(
        s.x.untyped_storage().data_ptr() == series.untyped_storage().data_ptr()
        for s in dm.splits.values()
    )
    windows = sum(len(s) for s in dm.splits.values())
    start = time.perf_counter()
    shapes = [batch[0].shape for _, batch in zip(range(200), dm.train_dataloader(), strict=False)]
    batches_s = time.perf_counter() - start
    return {
        "rows": len(series),
        "channels": series.shape[1],
        "windows": windows,
        "series_mb": series.numel() * series.element_size() / 2**20,
        "materialised_mb": windows * window * series.shape[1] * 4 / 2**20,
        "window_storage_mb": 0.0 if shared else float("nan"),
        "rss_after_mb": after - before,
        "rss_trimmed_mb": trimmed - before,
        "peak_rss_mb": peak - before,
        "setup_s": setup_s,
        "batch_ms": 1000 * batches_s / 200,
        "views": len(views),
        "batch_shape": list(shapes[0]),
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--features", type=int, default=0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.window, args.features)))
        return

    import numpy as np
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "series.parquet"
        rng = np.random.default_rng(0)
        t = np.arange(args.rows, dtype=np.float32)
        columns = {"y": np.sin(t / 50) + 0.1 * rng.standard_normal(args.rows, dtype=np.float32)}
        for i in range(args.features):
            columns[f"x{i}"] = rng.standard_normal(args.rows, dtype=np.float32)
        pd.DataFrame(columns).to_parquet(path)
        del columns, t
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(path), "--window", str(args.window),
             "--features", str(args.features)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    r = json.loads(child.stdout.strip().splitlines()[-1])
    rows = [
        ("rows x channels", f"{r['rows']:,} x {r['channels']}"),
        ("windows (train+val+test)", f"{r['windows']:,} of {args.window} steps"),
        ("series in memory (float32)", f"{r['series_mb']:.1f} MB"),
        ("windows if materialised", f"{r['materialised_mb']:,.0f} MB"),
        ("extra storage of the windows", f"{r['window_storage_mb']:.1f} MB (views of the series)"),
        ("RSS growth after setup", f"{r['rss_after_mb']:.1f} MB (libraries loaded before)"),
        ("... after malloc_trim(0)", f"{r['rss_trimmed_mb']:.1f} MB (what the data holds)"),
        ("peak RSS growth during setup", f"{r['peak_rss_mb']:.1f} MB (file reading included)"),
        ("setup time", f"{r['setup_s']:.2f} s"),
        ("one batch of 256 windows", f"{r['batch_ms']:.2f} ms {r['batch_shape']}"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 40}")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
