"""lstmkit's default settings on data it has never been tuned on (issue #18).

    python scripts/benchmark_defaults.py [--label before|after] [--datasets GunPoint,Airline]
                                         [--backends custom,cudnn] [--timeout 600] [--keep]

Every run is the documented user command in a subprocess, with nothing but the data paths, the
backend and the run folder (no per-dataset overrides):

- classification, on archive datasets aeon ships that ``configs/`` does not name::

      lstmkit-train data=sequences model=classifier data.path=<aeon>/X/X_TRAIN.ts \\
          data.test_path=<aeon>/X/X_TEST.ts model/encoder=<backend> hydra.run.dir=<tmp>

- forecasting, on aeon's Airline, Lynx and ShampooSales series written to a CSV (time, value)::

      lstmkit-train data=csv model=regressor data.path=<tmp>/X.csv data.target=value \\
          data.time=time model/encoder=<backend> hydra.run.dir=<tmp>

  then ``lstmkit-predict`` of the best checkpoint over the whole CSV; the harness scores the
  windows whose targets fall in the test split (the datamodule's chronological split, read
  from the run's ``config.yaml``) with its own MASE (Hyndman & Koehler 2006: MAE over the
  in-sample seasonal-naive MAE of the training split; m = 12 monthly, 1 yearly), and the
  seasonal naive forecast's MASE on the very same targets. A ``test/mase`` in ``metrics.json``
  is printed beside it as a cross-check.

Goals (issue #18): accuracy within 2 points of 1-NN DTW on every classification set, MASE
below the seasonal naive's on every forecasting set, each run under 3 minutes. The table is
printed and written to ``benchmarks/defaults_<label>.json``. The machine may be shared: the
1-minute load average at start and end is recorded with the results.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 180.0
GOAL_ACC_MARGIN = 0.02

CLASSIFICATION = ["BasicMotions", "ItalyPowerDemand", "GunPoint", "PickupGestureWiimoteZ"]
#: name -> (aeon loader, seasonal period m, first time stamp, frequency of the time column)
FORECASTING = {
    "Airline": ("load_airline", 12, "1949-01", "monthly"),  # 1949-1960, passengers (thousands)
    "Lynx": ("load_lynx", 1, 1821, "yearly"),  # 1821-1934, trappings
    # three years of monthly sales; the source labels the years 1-3: the dates here are nominal
    "ShampooSales": ("load_shampoo_sales", 12, "2001-01", "monthly"),
}
BACKENDS = ["custom", "cudnn"]

UCR_SOURCE = (
    "Dau et al. 2019, 'The UCR Time Series Classification Archive', IEEE/CAA J. Autom. Sinica "
    "6(6); the archive's DataSummary.csv, 1 - the 'DTW (w=100)' error (full warping window)"
)
UEA_SOURCE = (
    "Bagnall et al. 2018, 'The UEA multivariate time series classification archive, 2018', "
    "arXiv:1811.00075, the 1-NN DTW_D / DTW_I benchmark accuracies"
)
BAKEOFF_SOURCE = (
    "Ruiz et al. 2021, 'The great multivariate time series classification bake off', Data "
    "Min. Knowl. Disc. 35, the results on the archive's default train/test split"
)
LSTMFCN_SOURCE = (
    "Karim et al. 2018, 'LSTM Fully Convolutional Networks for Time Series Classification', "
    "IEEE Access 6 (the 85 UCR 2015 datasets)"
)
#: where the UCR values were checked: a verbatim copy of the archive's DataSummary.csv
UCR_CHECK = (
    "re-verified 2026-12-07 against a copy of DataSummary.csv (github.com/Chang-George-Dong/"
    "TrojanTime, commit 72aef95, DataSummary.csv) and, for the 85 old datasets, the '1-NN DTW' "
    "column of the LSTM-FCN authors' results (github.com/titu1994/LSTM-FCN, commit 65cebcb, "
    "Results/train_loss_old_datasets.csv)"
)
UCR_CHECK_2018 = UCR_CHECK.split(" and,")[0]  # a 2018 dataset: in DataSummary.csv only
LSTMFCN_CHECK = (
    "re-verified 2026-12-07 against the authors' results file (github.com/titu1994/LSTM-FCN, "
    "commit 65cebcb, Results/train_loss_old_datasets.csv, column 'LSTM-FCN'); not against the "
    "paper's table itself"
)
TSML_CHECK = (
    "re-verified 2026-12-07 against the UEA group's results (github.com/time-series-machine-"
    "learning/tsml-eval, commit 4fca0f1, results/tsml/MultivariateDefaultTrainTest.csv, default "
    "train/test split; Ruiz et al. 2021, DMKD 35); not against the 2018 arXiv table itself"
)
#: Published test accuracies, one source string per value; ``verified`` says where it was
#: checked again, or "not re-verified" (recalled: check it before quoting it elsewhere).
REFERENCES: dict[str, dict[str, dict[str, Any]]] = {
    "GunPoint": {  # DataSummary: error 0.0933 -> 0.9067; LSTM-FCN csv: 1-NN DTW 0.907
        "1nn_dtw": {"value": 0.907, "source": UCR_SOURCE, "verified": UCR_CHECK},
        "lstm_fcn": {"value": 1.000, "source": LSTMFCN_SOURCE, "verified": LSTMFCN_CHECK},
    },
    "ItalyPowerDemand": {  # DataSummary: error 0.0496 -> 0.9504; LSTM-FCN csv: 1-NN DTW 0.95
        "1nn_dtw": {"value": 0.950, "source": UCR_SOURCE, "verified": UCR_CHECK},
        "lstm_fcn": {"value": 0.962, "source": LSTMFCN_SOURCE, "verified": LSTMFCN_CHECK},
    },
    "PickupGestureWiimoteZ": {  # DataSummary: error 0.3400 -> 0.660
        # added to the archive in 2018, after LSTM-FCN's 85 datasets: no LSTM-FCN value
        "1nn_dtw": {"value": 0.660, "source": UCR_SOURCE, "verified": UCR_CHECK_2018},
    },
    "BasicMotions": {
        "1nn_dtw": {"value": 0.975, "source": UEA_SOURCE + " (DTW_D)", "verified": TSML_CHECK},
        # recalled as 1.000 from the 2018 table (not re-verified); the group's later results
        # file gives 0.725, the value kept here (unused by the goals: DTW_D is "1-NN DTW")
        "1nn_dtw_i": {"value": 0.725, "source": BAKEOFF_SOURCE + " (DTW_I)",
                      "verified": TSML_CHECK},
    },
}  # fmt: skip


# ------------------------------------------------------------------ pure pieces (tested)
def naive_mae(train: list[float], m: int) -> float:
    """In-sample MAE of the seasonal naive forecast ``y_{t-m}`` over ``train`` (the MASE
    scale, Hyndman & Koehler 2006); ``m`` falls back to 1 when ``train`` is too short."""
    m = m if len(train) > m else 1
    diffs = [abs(train[t] - train[t - m]) for t in range(m, len(train))]
    return sum(diffs) / len(diffs)


def seasonal_naive(series: list[float], origin: int, h: int, m: int) -> float:
    """The seasonal naive forecast of ``series[origin + h]`` made at ``origin`` (the last
    observed index): the value one or more whole seasons before, ``series[origin + h - m *
    ceil(h / m)]`` (``h >= 1``)."""
    return series[origin + h - m * math.ceil(h / m)]


def mase(preds: list[float], targets: list[float], scale: float) -> float:
    """Mean absolute error of ``preds`` against ``targets`` divided by ``scale``."""
    return sum(abs(p - t) for p, t in zip(preds, targets, strict=True)) / len(preds) / scale


def split_counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """``(train, val, test)`` rows of a chronological split (lstmkit.data.filebase's rule)."""
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    return n - n_val - n_test, n_val, n_test


def score_forecast(
    series: list[float], preds: dict[int, list[float]], n_train: int, test_begin: int, m: int
) -> dict[str, float]:
    """MASE of the model and of the seasonal naive forecast on the same test targets.

    Args:
        series: the whole series ``(N,)``.
        preds: forecast origin (index of a window's last input) -> its ``H`` forecasts; the
            windows scored are those whose ``H`` targets all lie in ``[test_begin, N)``.
        n_train: training rows (the MASE scale's in-sample part).
        test_begin: the first test row.
        m: seasonal period.
    """
    scale = naive_mae(series[:n_train], m)
    model, naive, truth = [], [], []
    for origin, forecast in sorted(preds.items()):
        horizon = len(forecast)
        if origin + 1 < test_begin or origin + horizon >= len(series):
            continue
        for h, value in enumerate(forecast, start=1):
            model.append(value)
            naive.append(seasonal_naive(series, origin, h, m))
            truth.append(series[origin + h])
    if not truth:
        raise ValueError("no window has its targets in the test split")
    return {
        "mase": mase(model, truth, scale),
        "snaive_mase": mase(naive, truth, scale),
        "mae": mase(model, truth, 1.0),
        "scale": scale,
        "test_targets": len(truth),
    }


def goal_met(task: str, value: float | None, reference: float | None, seconds: float) -> str:
    """``yes`` or ``no (<which goals missed>)``; ``reference`` is 1-NN DTW accuracy
    (classification) or the seasonal naive MASE (forecasting)."""
    if value is None:
        return "no (failed)"
    missed = []
    if reference is not None:
        good = value >= reference - GOAL_ACC_MARGIN if task == "classification" else (
            value < reference)  # fmt: skip
        if not good:
            missed.append("acc" if task == "classification" else "mase")
    if seconds >= GOAL_SECONDS:
        missed.append("time")
    return "yes" if not missed else f"no ({', '.join(missed)})"


# ------------------------------------------------------------------ running the commands
def command(name: str) -> list[str]:
    """The console script ``name`` beside this Python (``lstmkit-train``), else ``-m``."""
    script = Path(sys.executable).parent / name
    if script.is_file():
        return [str(script)]
    stem = name.removeprefix("lstmkit-")  # the commands' modules may move to lstmkit.cli
    module = next((m for m in (f"lstmkit.cli.{stem}", f"lstmkit.{stem}") if _found(m)), "")
    return [sys.executable, "-m", module or f"lstmkit.{stem}"]


def _found(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package is missing
        return False


def run(args: list[str], timeout: float) -> tuple[float, str | None]:
    """Run a command; ``(wall seconds, None)`` or ``(seconds, the error line)``: the
    last output line that names an error (a traceback ends with it), else the last line."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - start, f"timed out after {timeout:.0f} s"
    seconds = time.perf_counter() - start
    if proc.returncode == 0:
        return seconds, None
    lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error" in ln or "error" in ln]
    return seconds, (errors or lines or [f"exit code {proc.returncode}"])[-1][:200]


def aeon_dir(name: str) -> Path:
    import aeon.datasets

    return Path(aeon.datasets.__file__).parent / "data" / name


def load_series(name: str) -> list[float]:
    """aeon's bundled series (a numpy array in aeon 1.x, a pandas Series in older ones)."""
    import warnings

    import aeon.datasets

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # Lynx, ShampooSales: deprecated in 1.6
        values = getattr(aeon.datasets, FORECASTING[name][0])()
    return [float(v) for v in getattr(values, "to_numpy", lambda: values)()]


def time_stamps(name: str, n: int) -> list[str]:
    """``n`` time stamps: ISO months (``1949-01-01``) or years (``1821``)."""
    _, _, first, freq = FORECASTING[name]
    if freq == "yearly":
        return [str(first + i) for i in range(n)]
    year, month = map(int, first.split("-"))
    return [f"{year + (month - 1 + i) // 12:04d}-{(month - 1 + i) % 12 + 1:02d}-01"
            for i in range(n)]  # fmt: skip


def write_csv(path: Path, stamps: list[str], values: list[float]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["time", "value"])
        writer.writerows(zip(stamps, values, strict=True))


def read_metrics(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def run_config(run_dir: Path) -> dict[str, Any]:
    """The run's resolved ``config.yaml`` as plain values."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"))  # type: ignore[return-value]


def classification_run(name: str, backend: str, work: Path, timeout: float) -> dict[str, Any]:
    folder, run_dir = aeon_dir(name), work / "run"
    args = [*command("lstmkit-train"), "data=sequences", "model=classifier",
            f"data.path={folder / f'{name}_TRAIN.ts'}",
            f"data.test_path={folder / f'{name}_TEST.ts'}",
            f"model/encoder={backend}", f"hydra.run.dir={run_dir}"]  # fmt: skip
    seconds, error = run(args, timeout)
    metrics = read_metrics(run_dir)
    ref = REFERENCES.get(name, {})
    return {
        "metric": "acc",
        "value": None if error else metrics.get("test", {}).get("test/acc"),
        "naive": metrics.get("baseline", {}).get("test/acc"),
        "naive_name": "majority class",
        "reference": ref.get("1nn_dtw", {}).get("value"),
        "lstm_fcn": ref.get("lstm_fcn", {}).get("value"),
        "epochs": metrics.get("epochs"),
        "seconds": seconds,
        "error": error,
    }


def forecasting_run(name: str, backend: str, work: Path, timeout: float) -> dict[str, Any]:
    series = load_series(name)
    data, run_dir, m = work / f"{name}.csv", work / "run", FORECASTING[name][1]
    write_csv(data, time_stamps(name, len(series)), series)
    args = [*command("lstmkit-train"), "data=csv", "model=regressor", f"data.path={data}",
            "data.target=value", "data.time=time", f"model/encoder={backend}",
            f"hydra.run.dir={run_dir}"]  # fmt: skip
    seconds, error = run(args, timeout)
    metrics = read_metrics(run_dir)
    row: dict[str, Any] = {
        "metric": "MASE", "value": None, "naive": None, "naive_name": f"seasonal naive (m={m})",
        "reference": None, "lstm_fcn": None, "epochs": metrics.get("epochs"),
        "seconds": seconds, "error": error, "season": m,
        "lstmkit_test_mase": metrics.get("test", {}).get("test/mase"),
        "lstmkit_baseline": {k: v for k, v in metrics.get("baseline", {}).items()},
    }  # fmt: skip
    if error:
        return row
    try:
        row.update(score_run(series, data, run_dir, metrics, m, timeout))
    except Exception as exc:  # a scoring failure is a row, not a crash
        row["error"] = f"scoring: {type(exc).__name__}: {exc}"[:200]
    return row


def fitted_window(cfg: dict[str, Any], ckpt: str) -> int:
    """The run's window: the config's, or (``window: auto``) the one the datamodule fitted,
    which the checkpoint stores with the data's state."""
    if cfg["window"] != "auto":
        return int(cfg["window"])
    import torch

    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    fitted = [v for k, v in state.items() if k.endswith("DataModule") and isinstance(v, dict)]
    return int(fitted[0]["window"])  # the datamodule's state (its hyperparameters say "auto")


def score_run(
    series: list[float], data: Path, run_dir: Path, metrics: dict, m: int, timeout: float
) -> dict[str, Any]:
    """``lstmkit-predict`` over the whole CSV, then :func:`score_forecast` on the test split."""
    cfg = run_config(run_dir)["data"]
    n_train, n_val, _ = split_counts(len(series), cfg["val_fraction"], cfg["test_fraction"])
    out = run_dir / "benchmark_predictions.csv"
    ckpt = metrics.get("best_model_path") or str(run_dir / "checkpoints" / "last.ckpt")
    window, horizon = fitted_window(cfg, ckpt), int(cfg["horizon"])
    _, error = run([*command("lstmkit-predict"), f"ckpt_path={ckpt}", f"input={data}",
                    f"output={out}"], timeout)  # fmt: skip
    if error:
        raise RuntimeError(f"lstmkit-predict: {error}")
    with out.open() as f:
        rows = list(csv.DictReader(f))
    columns = (
        ["pred_value"] if horizon == 1 else [f"pred_value_t+{h}" for h in range(1, horizon + 1)]
    )
    # one row per window (stride 1, in order): the index of its last input row, or by position
    preds = {int(r.get("last_input_row", k + window - 1)): [float(r[c]) for c in columns]
             for k, r in enumerate(rows)}  # fmt: skip
    scores = score_forecast(series, preds, n_train, n_train + n_val, m)
    # the run's own baseline: the training mean before issue #18, the seasonal naive after
    base_mae = metrics.get("baseline", {}).get("test/mae")
    scores["run_baseline_mase"] = None if base_mae is None else base_mae / scores["scale"]
    return {"value": scores["mase"], "naive": scores["snaive_mase"],
            "reference": scores["snaive_mase"], "scores": scores,
            "lstmkit_test_mae": metrics.get("test", {}).get("test/mae")}  # fmt: skip


def benchmark(name: str, backend: str, timeout: float, keep: bool) -> dict[str, Any]:
    task = "classification" if name in CLASSIFICATION else "forecasting"
    work = Path(tempfile.mkdtemp(prefix=f"lstmkit_defaults_{name}_{backend}_"))
    fn = classification_run if task == "classification" else forecasting_run
    try:
        row = fn(name, backend, work, timeout)
    except Exception as exc:
        row = {"value": None, "seconds": 0.0, "error": f"{type(exc).__name__}: {exc}"[:200]}
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    row |= {"dataset": name, "task": task, "backend": backend,
            "run_folder": str(work / "run") if keep else None}  # fmt: skip
    row["goal"] = goal_met(task, row.get("value"), row.get("reference"), row["seconds"])
    return row


# ------------------------------------------------------------------ report
def fmt(value: Any, digits: int = 3) -> str:
    return (
        "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    )


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ["dataset", "task", "backend", "metric", "value", "1-NN DTW", "LSTM-FCN",
            "naive", "goal met?", "epochs", "wall s"]  # fmt: skip
    lines = [head]
    for r in rows:
        ref_dtw = r.get("reference") if r.get("task") == "classification" else None
        lines.append([r["dataset"], r["task"][:5], r["backend"], r.get("metric", "-"),
                      fmt(r.get("value")), fmt(ref_dtw), fmt(r.get("lstm_fcn")),
                      fmt(r.get("naive")), r["goal"], fmt(r.get("epochs")),
                      fmt(r["seconds"], 1)])  # fmt: skip
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    for i, line in enumerate(lines):
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for r in rows:
        if r.get("error"):
            print(f"  {r['dataset']}/{r['backend']} failed: {r['error']}")
        if r.get("lstmkit_test_mase") is not None or r.get("lstmkit_test_mae") is not None:
            scores, base = r.get("scores", {}), r.get("lstmkit_baseline", {})
            print(f"  {r['dataset']}/{r['backend']} cross-check: metrics.json test/mae="
                  f"{fmt(r.get('lstmkit_test_mae'))} (harness {fmt(scores.get('mae'))}), "
                  f"test/mase={fmt(r.get('lstmkit_test_mase'))} (harness "
                  f"{fmt(scores.get('mase'))}), baseline test/mase={fmt(base.get('test/mase'))}"
                  f" (harness seasonal naive {fmt(scores.get('snaive_mase'))}; the run's "
                  f"baseline MAE / scale {fmt(scores.get('run_baseline_mase'))})")  # fmt: skip
    print(
        "naive: majority class (classification; metrics.json's baseline), seasonal naive "
        "MASE on the same test targets (forecasting; the forecasting goal's reference)"
    )
    for name, refs in REFERENCES.items():
        for key, ref in refs.items():
            print(f"  {name} {key} {ref['value']:.3f}: {ref['source']}\n      {ref['verified']}")


def footer(total: float, load: dict[str, float], env: dict[str, Any]) -> str:
    return (f"total {total:.0f} s; load average (1 min) at start {load['start']:.2f}, end "
            f"{load['end']:.2f} on {env['cpus']} CPUs; torch {env['torch']}, CPU ISA "
            f"{env['cpu_capability']}")  # fmt: skip


def environment() -> dict[str, Any]:
    import torch

    return {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "lstmkit_train": " ".join(command("lstmkit-train")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join([*CLASSIFICATION, *FORECASTING]))
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--label", default="before", help="names the JSON: defaults_<label>")
    parser.add_argument("--out", default=None, help="the JSON (default benchmarks/...)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--keep", action="store_true", help="keep the run folders")
    parser.add_argument("--show", metavar="JSON", help="print a saved run's table; no training")
    args = parser.parse_args()
    if args.show:
        saved = json.loads(Path(args.show).read_text())
        print_table(saved["rows"])
        print(footer(saved["total_seconds"], saved["load_average_1min"], saved["environment"]))
        return
    names, backends = args.datasets.split(","), args.backends.split(",")
    unknown = [n for n in names if n not in CLASSIFICATION and n not in FORECASTING]
    if unknown:
        parser.error(
            f"unknown datasets {unknown}: choose from {CLASSIFICATION + list(FORECASTING)}"
        )

    env = environment()
    load_start = os.getloadavg()[0]
    print(f"torch {env['torch']}, CPU ISA {env['cpu_capability']}, {env['cpus']} CPUs, "
          f"load average (1 min) at start {load_start:.2f}; {env['lstmkit_train']}")  # fmt: skip
    start = time.perf_counter()
    rows = []
    for name in names:
        for backend in backends:
            rows.append(benchmark(name, backend, args.timeout, args.keep))
            r = rows[-1]
            print(f"  {name} {backend}: {r.get('metric', '')} {fmt(r.get('value'))} "
                  f"({r['seconds']:.1f} s){' ' + r['error'] if r.get('error') else ''}",
                  flush=True)  # fmt: skip
    total = time.perf_counter() - start
    load_end = os.getloadavg()[0]
    print_table(rows)
    print(footer(total, {"start": load_start, "end": load_end}, env))
    out = Path(args.out) if args.out else ROOT / "benchmarks" / f"defaults_{args.label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "label": args.label, "command": " ".join(sys.argv), "environment": env,
        "load_average_1min": {"start": load_start, "end": load_end},
        "total_seconds": total, "goal_seconds": GOAL_SECONDS,
        "goal_acc_margin": GOAL_ACC_MARGIN, "references": REFERENCES, "rows": rows,
    }, indent=2) + "\n")  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
