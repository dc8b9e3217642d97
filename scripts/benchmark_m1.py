"""M1 yearly (181 series, horizon 6): lstmkit's global LSTM against neuralforecast's LSTM and
the Monash archive's published baselines, accuracy and training time in one table.

Both learners see the same data (aeon's bundled ``m1_yearly_dataset``), the same split (the
last 6 values of every series are its test values, everything before them trains) and the
same horizon; both forecasts are scored here by one formula (:mod:`lstmkit.forecast_metrics`:
MASE with the in-sample naive scale, season 1, as the archive; sMAPE as a fraction). The peer
runs in its own virtual environment (neuralforecast pins its own torch):

    python3 -m venv .venv-nf && .venv-nf/bin/pip install neuralforecast
    python scripts/benchmark_m1.py --peer-python .venv-nf/bin/python --seeds 42,43,44

neuralforecast's ``LSTM`` runs with its defaults (2 x 128 LSTM, MLP decoder, MAE loss, robust
scaling, 1000 steps, input 3 x horizon) and ``start_padding_enabled=True`` so that the short
series train too (lstmkit pads them as well: ``short_series=pad``); ``--peer-input-size 8``
gives it lstmkit's window. Training times are wall-clock seconds of ``fit`` with one CPU
thread for both (``OMP_NUM_THREADS=1``, ``num_threads=1``); lstmkit's is the whole
``train(cfg)`` (reading the data, fitting, testing), the peer's ``NeuralForecast.fit`` alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HORIZON = 6
#: Godahewa et al. 2021, "Monash Time Series Forecasting Archive" (NeurIPS Datasets and
#: Benchmarks), Table 2 "Mean MASE results", row M1 Yearly, in the table's column order.
MONASH_M1_YEARLY_MASE = {
    "SES": 4.938, "Theta": 4.191, "TBATS": 3.499, "ETS": 3.771, "(DHR-)ARIMA": 4.479,
    "PR": 4.588, "CatBoost": 4.427, "FFNN": 4.355, "DeepAR": 4.603, "N-BEATS": 4.384,
    "WaveNet": 4.666, "Transformer": 5.519,
}  # fmt: skip


def peer_main(args: argparse.Namespace) -> None:
    """In the peer's environment: fit neuralforecast's LSTM, write its test forecasts."""
    import logging

    import pandas as pd
    import torch
    from neuralforecast import NeuralForecast
    from neuralforecast.models import LSTM

    torch.set_num_threads(1)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    train = pd.read_parquet(args.peer)
    model = LSTM(h=HORIZON, input_size=args.peer_input_size, start_padding_enabled=True,
                 random_seed=args.seed, enable_progress_bar=False, enable_model_summary=False,
                 logger=False, accelerator="cpu")  # fmt: skip
    nf = NeuralForecast(models=[model], freq=1)
    start = time.perf_counter()
    nf.fit(train)
    fit_s = time.perf_counter() - start
    forecast = nf.predict()
    forecast.to_parquet(args.out)
    print(json.dumps({"fit_s": fit_s}))


def m1_table():
    """``(long DataFrame unique_id/ds/y of every value, the training part, the test part)``."""
    import numpy as np
    import pandas as pd
    from aeon.datasets import load_forecasting

    raw = load_forecasting("m1_yearly_dataset")
    lengths = [len(v) for v in raw["series_value"]]
    frame = pd.DataFrame({
        "unique_id": np.repeat(raw["series_name"].to_numpy(), lengths),
        "ds": np.concatenate([np.arange(n) for n in lengths]),
        "y": np.concatenate([np.asarray(v, dtype=np.float64) for v in raw["series_value"]]),
    })  # fmt: skip
    last = frame.groupby("unique_id")["ds"].transform("max")
    test = frame["ds"] > last - HORIZON
    return frame, frame[~test].reset_index(drop=True), frame[test].reset_index(drop=True)


def score(train, test, forecast, column: str) -> dict[str, float]:
    """Mean MASE (naive in-sample scale) and sMAPE of ``forecast[column]`` over the series."""
    import torch

    from lstmkit.forecast_metrics import naive_scale, window_errors

    merged = test.merge(forecast[["unique_id", "ds", column]], on=["unique_id", "ds"])
    if len(merged) != len(test):
        raise RuntimeError(f"{len(test) - len(merged)} test values have no forecast")
    preds, truths, scales = [], [], []
    for uid, part in merged.sort_values(["unique_id", "ds"]).groupby("unique_id"):
        history = torch.tensor(train.loc[train.unique_id == uid, "y"].to_numpy())[:, None]
        scales.append(naive_scale(history, 1))
        preds.append(torch.tensor(part[column].to_numpy())[:, None])
        truths.append(torch.tensor(part["y"].to_numpy())[:, None])
    errors = window_errors(torch.stack(preds), torch.stack(truths), torch.stack(scales))
    return {"mase": float(errors["mase"].mean()), "smape": float(errors["smape"].mean())}


def run_lstmkit(seed: int, run_dir: Path) -> dict[str, float]:
    """``experiment=reference_m1_yearly`` with one seed (its own run folder)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from lstmkit.cli.train import train

    GlobalHydra.instance().clear()
    overrides = ["experiment=reference_m1_yearly", "trainer=cpu", f"seed={seed}", "plots=false",
                 f"paths.output_dir={run_dir}", "~callbacks.rich_progress_bar",
                 "+trainer.enable_progress_bar=false", "~callbacks.model_summary"]  # fmt: skip
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    start = time.perf_counter()
    result = train(cfg)
    elapsed = time.perf_counter() - start
    # the whole run (data, fit, test): no less than the fit alone
    return {"mase": result["test/mase"], "smape": result["test/smape"], "fit_s": elapsed,
            "baseline_mase": result["baseline/mase"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--peer-python", default=".venv-nf/bin/python",
                        help="a Python with neuralforecast; '' skips the peer")  # fmt: skip
    parser.add_argument("--peer-input-size", type=int, default=-1)
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        peer_main(args)
        return
    import pandas as pd

    seeds = [int(s) for s in args.seeds.split(",")]
    _, train, test = m1_table()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ours = [run_lstmkit(s, tmp / f"lstmkit_{s}") for s in seeds]
        rows.append(("lstmkit LSTM (experiment=reference_m1_yearly)", ours))
        naive = ours[0]["baseline_mase"]
        if args.peer_python:
            train.to_parquet(tmp / "train.parquet")
            peer = []
            for s in seeds:
                out = tmp / f"nf_{s}.parquet"
                done = subprocess.run(
                    [args.peer_python, __file__, "--peer", str(tmp / "train.parquet"),
                     "--out", str(out), "--seed", str(s),
                     "--peer-input-size", str(args.peer_input_size)],
                    capture_output=True, text=True, check=False,
                    env={**os.environ, "OMP_NUM_THREADS": "1"},
                )  # fmt: skip
                if done.returncode != 0:
                    raise RuntimeError(f"the peer failed:\n{done.stderr[-3000:]}")
                fit_s = json.loads(done.stdout.strip().splitlines()[-1])["fit_s"]
                peer.append({**score(train, test, pd.read_parquet(out), "LSTM"), "fit_s": fit_s})
            size = "3 x horizon" if args.peer_input_size < 0 else str(args.peer_input_size)
            rows.append((f"neuralforecast LSTM (defaults, input {size})", peer))

    def stat(runs, key):
        values = [r[key] for r in runs]
        mean = sum(values) / len(values)
        return (
            f"{mean:.3f} ({min(values):.3f}-{max(values):.3f})"
            if len(values) > 1
            else f"{mean:.3f}"
        )

    print(f"M1 yearly, 181 series, horizon {HORIZON}, seeds {args.seeds} (mean, min-max)")
    print(f"{'method':<52} {'MASE':>22} {'sMAPE':>22} {'fit s':>16}")
    for name, runs in rows:
        print(
            f"{name:<52} {stat(runs, 'mase'):>22} {stat(runs, 'smape'):>22} {stat(runs, 'fit_s'):>16}"
        )
    print(f"{'naive (last value; every run summary)':<52} {naive:>22.3f}")
    for name, value in MONASH_M1_YEARLY_MASE.items():
        print(f"{'Monash archive, Table 2: ' + name:<52} {value:>22.3f}")


if __name__ == "__main__":
    main()
