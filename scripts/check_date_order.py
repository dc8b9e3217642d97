"""Window order on a file with US dates (``1/13/2022``) and shuffled rows.

Writes a 400-day CSV whose target is the day number, reads it with ``CSVDataModule`` (``time=date``,
``window=8``) and counts the steps inside the windows that do not follow the step before (0 when
the rows are in time order). Prints one line; issue 17's before/after figure.

    python scripts/check_date_order.py [--days 400] [--window 8]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--window", type=int, default=8)
    args = parser.parse_args()

    from lstmkit.data import CSVDataModule

    days = pd.date_range("2022-01-01", periods=args.days, freq="D")
    frame = pd.DataFrame(
        {"date": [f"{d.month}/{d.day}/{d.year}" for d in days], "day": np.arange(args.days) * 1.0}
    )
    frame = frame.iloc[np.random.default_rng(0).permutation(args.days)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "us_dates.csv"
        frame.to_csv(path, index=False)
        dm = CSVDataModule(str(path), target="day", time="date", window=args.window)
        dm.setup()
    total = wrong = 0
    for split in ("train", "val", "test"):
        ds = dm.splits[split]
        x, _, _ = ds.__getitems__(list(range(len(ds))))
        day = x[..., 0].double() * dm.fitted["input_std"][0] + dm.fitted["input_mean"][0]
        step = day.diff(dim=1).round()
        total += step.numel()
        wrong += int((step != 1).sum())
    print(f"out-of-order steps inside the windows: {wrong} of {total}")


if __name__ == "__main__":
    main()
