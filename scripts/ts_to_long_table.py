"""Write a UCR/UEA ``.ts`` file (e.g. one bundled with aeon) as a long-format table for
``data=table``: one row per (case, time step), columns ``case``, ``t``, ``c0`` .. ``c{C-1}``
and ``label``.

    python scripts/ts_to_long_table.py BasicMotions_TRAIN.ts basic_motions_train.parquet
    python scripts/ts_to_long_table.py --aeon BasicMotions /tmp/bm   # _TRAIN and _TEST of aeon's copy
"""

from __future__ import annotations

import argparse
from pathlib import Path


def convert(ts: Path, out: Path) -> int:
    """Write ``ts`` as a long table at ``out`` (.parquet or .csv); returns the rows written."""
    import numpy as np
    import pandas as pd

    from lstmkit.data.files import read_sequences

    sequences, labels = read_sequences(str(ts))
    parts = []
    for case, (seq, label) in enumerate(zip(sequences, labels, strict=True)):
        part = pd.DataFrame(seq, columns=[f"c{k}" for k in range(seq.shape[1])])
        part.insert(0, "t", np.arange(len(seq)))
        part.insert(0, "case", case)
        part["label"] = str(label)
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out) if out.suffix == ".parquet" else frame.to_csv(out, index=False)
    return len(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a .ts file, or with --aeon a dataset name")
    parser.add_argument("out", help="the output file, or with --aeon a folder")
    parser.add_argument("--aeon", action="store_true", help="convert aeon's bundled _TRAIN/_TEST")
    args = parser.parse_args()
    if not args.aeon:
        print(f"{convert(Path(args.source), Path(args.out))} rows written to {args.out}")
        return
    import aeon

    folder = Path(aeon.__file__).parent / "datasets" / "data" / args.source
    for split in ("TRAIN", "TEST"):
        out = Path(args.out) / f"{args.source}_{split}.parquet"
        print(f"{convert(folder / f'{args.source}_{split}.ts', out)} rows written to {out}")


if __name__ == "__main__":
    main()
