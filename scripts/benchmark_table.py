"""Memory and speed of data=table on a large panel: many series in one Parquet table.

Writes ``series`` x ``steps`` rows (id int32, t int32, y float32: 12 bytes a row) as Parquet
(a single file, or a folder of ``--files`` files for ``--stream``), then, in a fresh child
process, builds ``PanelDataModule`` and trains one epoch of a small LSTM regressor from it
(CPU). Reports the raw data's in-memory size, the child's RSS growth after setup and its peak
growth (baseline: after importing the libraries and a warm-up on a tiny table), setup time and
rows/s, and the epoch's windows/s and rows/s (rows read by the windows' inputs).

    python scripts/benchmark_table.py                                # 10,000 x 1,000 = 10 M rows
    python scripts/benchmark_table.py --stream --files 20            # a folder, one file at a time
    python scripts/benchmark_table.py --series 200 --steps 100       # tiny
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    """Reset the kernel's peak RSS (VmHWM) to the current RSS (Linux >= 4.0)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def measure(path: str, args: argparse.Namespace) -> dict:
    import lightning.pytorch as pl
    import numpy as np
    import pandas as pd
    import torch

    from lstmkit.data import PanelDataModule
    from lstmkit.tasks import SequenceRegressor

    torch.set_num_threads(args.threads)
    kw = {"id": "id", "time": "t", "target": "y", "window": args.window, "horizon": args.horizon,
          "stride": args.stride, "batch_size": args.batch_size, "stream": args.stream}  # fmt: skip
    # warm-up on a tiny table: lazy imports and first calls are not data
    with tempfile.TemporaryDirectory() as tmp:
        tiny = Path(tmp) / "tiny.parquet"
        n = 4 * (args.window + 3 * args.horizon)
        pd.DataFrame({"id": np.repeat(np.arange(2, dtype=np.int32), n),
                      "t": np.tile(np.arange(n, dtype=np.int32), 2),
                      "y": np.random.rand(2 * n).astype(np.float32)}).to_parquet(tiny)  # fmt: skip
        PanelDataModule(str(tiny), **{**kw, "stream": False}).setup()
    before = _status_mb("VmRSS")
    _reset_peak()
    start = time.perf_counter()
    dm = PanelDataModule(path, **kw)
    dm.setup()
    setup_s = time.perf_counter() - start
    after = _status_mb("VmRSS")
    setup_peak = _status_mb("VmHWM")
    model = SequenceRegressor({"backend": "cudnn", "hidden_size": args.hidden},
                              **dm.model_kwargs())  # fmt: skip
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=0, num_sanity_val_steps=0)  # fmt: skip
    windows = len(dm.splits["train"]) * (args.batch_size if args.stream else 1)
    start = time.perf_counter()
    trainer.fit(model, dm)
    epoch_s = time.perf_counter() - start
    peak = _status_mb("VmHWM")
    rows = args.series * args.steps
    return {
        "rows": rows,
        "train_windows": windows if not args.stream else None,
        "train_batches": len(dm.splits["train"]) if args.stream else None,
        "setup_s": setup_s,
        "rss_after_setup_mb": after - before,
        "peak_setup_mb": setup_peak - before,
        "peak_total_mb": peak - before,
        "epoch_s": epoch_s,
        "steps": trainer.global_step,
        "baseline_rss_mb": before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=1_000)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--horizon", type=int, default=8)
    parser.add_argument("--stride", type=int, default=40, help="rows between training windows")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--stream", action="store_true", help="a folder, read file by file")
    parser.add_argument("--files", type=int, default=10, help="files of the folder (--stream)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args)))
        return

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw_mb = args.series * args.steps * 12 / 2**20  # id int32 + t int32 + y float32
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / ("panel" if args.stream else "panel.parquet")
        files = args.files if args.stream else 1
        per_file = -(-args.series // files)
        rng = np.random.default_rng(0)
        writer = None
        if args.stream:
            target.mkdir()
        else:
            schema = pa.schema([("id", pa.int32()), ("t", pa.int32()), ("y", pa.float32())])
            writer = pq.ParquetWriter(target, schema)
        for k in range(files):  # written in chunks of series: never the whole table at once
            ids = np.arange(k * per_file, min((k + 1) * per_file, args.series), dtype=np.int32)
            t = np.arange(args.steps, dtype=np.int32)
            level = rng.uniform(10, 100, len(ids)).astype(np.float32)[:, None]
            y = level * (1 + 0.2 * np.sin(2 * np.pi * t / 12)) + rng.standard_normal(
                (len(ids), args.steps), dtype=np.float32
            )
            table = pa.table({"id": np.repeat(ids, args.steps), "t": np.tile(t, len(ids)),
                              "y": y.reshape(-1).astype(np.float32)})  # fmt: skip
            if writer is not None:
                writer.write_table(table)
            else:
                pq.write_table(table, target / f"part-{k:04d}.parquet")
        if writer is not None:
            writer.close()
        disk_mb = (
            sum(f.stat().st_size for f in ([target] if target.is_file() else target.iterdir()))
            / 2**20
        )
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(target), *sys.argv[1:]],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    r = json.loads(child.stdout.strip().splitlines()[-1])
    windows = r["train_windows"]
    rows_read = (windows or r["train_batches"] * args.batch_size) * args.window
    table = [
        ("panel", f"{args.series:,} series x {args.steps:,} steps = {r['rows']:,} rows"),
        ("mode", f"stream, {files} files" if args.stream else "in memory, one Parquet file"),
        ("raw data in memory (id, t int32; y float32)", f"{raw_mb:.1f} MB (Parquet {disk_mb:.1f} MB)"),
        ("RSS growth after setup", f"{r['rss_after_setup_mb']:.1f} MB"),
        ("peak RSS growth during setup", f"{r['peak_setup_mb']:.1f} MB ({r['peak_setup_mb'] / raw_mb:.2f}x raw)"),
        ("peak RSS growth incl. the epoch", f"{r['peak_total_mb']:.1f} MB ({r['peak_total_mb'] / raw_mb:.2f}x raw)"),
        ("setup (read, order, scale, index)", f"{r['setup_s']:.1f} s = {r['rows'] / r['setup_s'] / 1e6:.2f} M rows/s"),
        (f"training windows (stride {args.stride})",
         f"{windows:,}" if windows else f"{r['train_batches']:,} batches"),
        ("one epoch", f"{r['epoch_s']:.1f} s, {r['steps']} steps of {args.batch_size}"),
        ("epoch throughput", f"{rows_read / r['epoch_s'] / 1e6:.2f} M input rows/s "
         f"({rows_read / args.window / r['epoch_s']:,.0f} windows/s)"),
        ("end to end (setup + epoch)", f"{r['rows'] / (r['setup_s'] + r['epoch_s']) / 1e6:.2f} M table rows/s"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in table)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 44}")
    for key, value in table:
        print(f"{key:<{width}}  {value}")
    print(f"(baseline RSS after imports and warm-up: {r['baseline_rss_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
