"""Peak memory of truncated BPTT vs full backpropagation, for sequence lengths T at fixed k.

Each configuration trains one batch of a per-step classifier (``SequenceClassifier``,
``per_step=True``; every chunk has a loss, a backward pass and an optimizer step) in a fresh
subprocess and reports its peak resident memory (``ru_maxrss``), next to a subprocess that only
builds the same data and model (the floor: Python, torch, Lightning, the input itself).

    python scripts/benchmark_tbptt.py                 # T = 10k, 100k; k = 100; full BPTT too
    python scripts/benchmark_tbptt.py --lengths 10000 100000 1000000 --no-full
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def child(mode: str, steps: int, k: int, batch: int, hidden: int, backend: str) -> dict:
    import lightning.pytorch as pl
    import torch

    from lstmkit.data import SequenceDataset
    from lstmkit.tasks import SequenceClassifier

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, steps, 1, generator=g)  # (B, T, 1)
    y = (x[..., 0] > 0).long()  # (B, T)
    data = SequenceDataset(x, y, torch.full((batch,), steps), per_step=True)
    task = SequenceClassifier(
        {"backend": backend, "hidden_size": hidden},
        num_classes=2,
        input_size=1,
        per_step=True,
        tbptt_steps=k if mode == "tbptt" else None,
    )
    start = time.perf_counter()
    if mode != "floor":
        trainer = pl.Trainer(
            max_epochs=1,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(task, data.loader(batch, shuffle=False, seed=0))
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"peak_mb": peak_mb, "seconds": seconds}


def run(mode: str, steps: int, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable, __file__, "--child", mode, "--lengths", str(steps), "--k", str(args.k),
        "--batch", str(args.batch), "--hidden", str(args.hidden), "--backend", args.backend,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--k", type=int, default=100, help="tbptt_steps")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--backend", default="cudnn", choices=["cudnn", "custom"])
    parser.add_argument("--no-full", action="store_true", help="skip full BPTT (large T)")
    parser.add_argument("--child", choices=["floor", "tbptt", "full"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.lengths[0], args.k, args.batch, args.hidden,
                               args.backend)))  # fmt: skip
        return

    print(f"per-step classifier, backend={args.backend}, batch={args.batch}, "
          f"hidden={args.hidden}, tbptt_steps={args.k}; peak RSS of a fresh process")  # fmt: skip
    header = f"{'T':>9} {'mode':>10} {'peak MB':>9} {'- floor':>9} {'fit s':>7}"
    print(header)
    print("-" * len(header))
    for steps in args.lengths:
        floor = run("floor", steps, args)
        modes = ["tbptt"] + ([] if args.no_full else ["full"])
        print(f"{steps:>9} {'floor':>10} {floor['peak_mb']:>9.0f} {'':>9} {'':>7}")
        for mode in modes:
            r = run(mode, steps, args)
            extra = r["peak_mb"] - floor["peak_mb"]
            label = f"k={args.k}" if mode == "tbptt" else "full BPTT"
            print(f"{steps:>9} {label:>10} {r['peak_mb']:>9.0f} {extra:>9.0f} {r['seconds']:>7.1f}")


if __name__ == "__main__":
    main()
