"""Reproduce the reference results (issue 8) and regenerate ``docs/RESULTS.md`` from the runs.

Each task is an ``experiment=reference_*`` config, trained on both backends (``cudnn`` and
``custom``, plus ``layernorm`` where it applies) through ``lstmkit.cli.train.train(cfg)``, the same
function ``lstmkit-train`` calls, composed with Hydra's compose API. The script measures each
run's wall time, computes the task's figure (some, such as the adding problem's solved fraction,
from the best checkpoint's test predictions), writes one table per task with the reference
figure, lstmkit's figure, whether the goal is reached, training sequences/epochs, wall time and
the exact command, and copies each run's plot beside the markdown. Nothing is typed by hand.
A task marked ``ensemble`` (Airline) trains its config's ``ensemble.size`` seeds with
``lstmkit.cli.ensemble.train_ensemble`` (what ``python -m lstmkit.cli.ensemble`` runs) and reports the
average of their forecasts beside every member's single-model figure.

    python scripts/reproduce.py                       # all tasks -> docs/RESULTS.md (~2 h)
    python scripts/reproduce.py --tasks adding_t100 copy_t50
    python scripts/reproduce.py --smoke               # tiny sizes, same code path, temp dir
    python scripts/reproduce.py --smoke --out /tmp/r  # ... written to /tmp/r/RESULTS.md

``--smoke`` never writes ``docs/RESULTS.md``: without ``--out`` it writes into a new temporary
folder and prints its path.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs"

#: Backend -> the overrides that select it (the experiment's other encoder settings are kept).
BACKENDS: dict[str, tuple[str, ...]] = {
    "cudnn": ("model.encoder.backend=cudnn",),
    "custom": ("model.encoder.backend=custom",),
    "layernorm": ("model.encoder.backend=custom", "+model.encoder.layer_norm=true"),
}

#: Added to every run: CPU, and no progress bar / model summary (console only, same results).
COMMON = (
    "trainer=cpu",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
    "~callbacks.rich_progress_bar",
    "~callbacks.model_summary",
)

#: Added in --smoke mode to every task: one epoch, a tiny encoder.
SMOKE = ("trainer.max_epochs=1", "model.encoder.hidden_size=8")
SMOKE_SYNTHETIC = ("data.num_train=64", "data.num_val=32", "data.num_test=32", "data.batch_size=16")

#: |error| < 0.04 in Hochreiter & Schmidhuber's target scaling 0.5 + (X1 + X2) / 4.
ADDING_TOLERANCE = 4 * 0.04
COUNTING_TOLERANCE = 0.1
#: Robustness curves: Gaussian noise std (standardised units) and fraction of missing steps.
ROBUSTNESS_LEVELS = {"noise": [0.0, 0.1, 0.25, 0.5, 1.0], "missing": [0.0, 0.1, 0.2, 0.3, 0.5]}
ROBUSTNESS_MISSING = 0.2


@dataclass
class Outcome:
    """A run's figure as text, whether it reaches the goal, and extra figures to report."""

    figure: str
    reached: bool
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Task:
    """One reference task: its experiment config, what it is compared with, how it is judged."""

    name: str
    experiment: str
    title: str
    reference: str
    goal: str
    judge: Callable[[dict[str, Any], dict[str, Any]], Outcome]
    backends: tuple[str, ...] = ("cudnn", "custom")
    #: "adding", "copy", "counting": figures computed from the test predictions;
    #: "robustness": test accuracy under noise and missing steps (`ROBUSTNESS_LEVELS`)
    predictions: str | None = None
    smoke: tuple[str, ...] = SMOKE_SYNTHETIC
    #: a deep ensemble (``lstmkit.cli.ensemble``): the config's ``ensemble.size`` seeds, trained
    #: like single runs; the figure is the average of their forecasts, each member's beside it
    ensemble: bool = False


def _get(metrics: dict[str, Any], key: str) -> float:
    value = metrics.get(key)
    return float(value) if value is not None else math.nan


def judge_adding(metrics: dict[str, Any], extra: dict[str, Any]) -> Outcome:
    solved = extra.get("solved", math.nan)
    return Outcome(
        f"{solved:.2%} solved (test MSE {_get(metrics, 'test/mse'):.4g})", solved >= 0.99
    )


def judge_copy(metrics: dict[str, Any], extra: dict[str, Any]) -> Outcome:
    loss, baseline = _get(metrics, "test/loss"), extra.get("memoryless_ce", math.nan)
    recall = extra.get("recall_acc", math.nan)
    ratio = loss / baseline if baseline else math.nan
    figure = f"CE {loss:.4f} ({ratio:.3f} x baseline {baseline:.4f}); recall accuracy {recall:.2%}"
    return Outcome(figure, loss <= baseline / 10)


def judge_accuracy(threshold: float) -> Callable[[dict[str, Any], dict[str, Any]], Outcome]:
    def judge(metrics: dict[str, Any], extra: dict[str, Any]) -> Outcome:
        acc = _get(metrics, "test/acc")
        return Outcome(f"accuracy {acc:.4f}", acc >= threshold)

    return judge


def judge_airline(metrics: dict[str, Any], extra: dict[str, Any]) -> Outcome:
    # darts scores its 6-month backtest by each forecast's last point: test/mape_last
    mape = _get(metrics, "test/mape_last")  # torchmetrics: a fraction
    figure = (
        f"MAPE {mape:.2%} 6 months ahead (all six steps: {_get(metrics, 'test/mape'):.2%}, "
        f"RMSE {_get(metrics, 'test/rmse'):.1f})"
    )
    seeds = extra.get("seeds")
    if seeds:  # an ensemble: name the members and give each one's single-model figure
        members = extra["test/member_mape_last"]
        figure = (
            f"{figure}: ensemble of {len(seeds)} seeds ({seeds[0]}-{seeds[-1]}, forecasts "
            f"averaged in {extra['space']} space); members' MAPE 6 months ahead "
            f"{', '.join(f'{m:.2%}' for m in members)} (mean {sum(members) / len(seeds):.2%})"
        )
    return Outcome(figure, mape <= 0.027)


def judge_addition(metrics: dict[str, Any], extra: dict[str, Any]) -> Outcome:
    exact = _get(metrics, "test/exact_match")
    epochs = extra.get("epochs", math.inf)
    figure = f"exact match {exact:.2%} (token accuracy {_get(metrics, 'test/token_acc'):.2%})"
    return Outcome(figure, exact >= 0.99 and epochs < 55)


def judge_robustness(metrics: dict[str, Any], extra: dict[str, Any]) -> Outcome:
    acc = extra.get("acc_missing", math.nan)
    curve = "; ".join(
        f"{kind} " + ", ".join(f"{level:g}: {extra.get(f'acc_{kind}_{level:g}', math.nan):.3f}"
        for level in levels[1:])
        for kind, levels in ROBUSTNESS_LEVELS.items()
    )  # fmt: skip
    figure = (
        f"accuracy {acc:.4f} with {ROBUSTNESS_MISSING:.0%} of steps missing (clean "
        f"{_get(metrics, 'test/acc'):.4f}); accuracy by level: {curve}"
    )
    return Outcome(figure, acc >= 0.95)


def judge_counting(metrics: dict[str, Any], extra: dict[str, Any]) -> Outcome:
    within, worst = extra.get("within", math.nan), extra.get("max_abs_error", math.nan)
    figure = f"{within:.2%} within +-0.1 (largest error {worst:.3f}, MSE {_get(metrics, 'test/mse'):.4g})"
    return Outcome(figure, within >= 1.0)


#: Godahewa et al. 2021 (Monash archive), Table 2, M1 Yearly: the best published mean MASE (TBATS).
M1_YEARLY_BEST = 3.499


def judge_m1_yearly(metrics: dict[str, Any], extra: dict[str, Any]) -> Outcome:
    mase = _get(metrics, "test/mase")
    gap = mase - M1_YEARLY_BEST
    verdict = "beats it" if gap < 0 else f"misses it by {gap:.3f} ({gap / M1_YEARLY_BEST:.1%})"
    figure = (
        f"mean MASE {mase:.3f} (sMAPE {_get(metrics, 'test/smape'):.2%}); best published "
        f"{M1_YEARLY_BEST} (TBATS): {verdict}"
    )
    return Outcome(figure, gap < 0)


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            "adding_t100",
            "reference_adding_t100",
            "Adding problem, T=100",
            "Hochreiter & Schmidhuber 1997, Exp. 4: stop criterion met after 74,000 training "
            "sequences (solved: abs. error < 0.04 in their target scaling)",
            ">= 99 % of test sequences solved with fewer than 74,000 training sequences",
            judge_adding,
            backends=("cudnn", "custom", "layernorm"),
            predictions="adding",
        ),
        Task(
            "adding_t500",
            "reference_adding_t500",
            "Adding problem, T=500",
            "Hochreiter & Schmidhuber 1997, Exp. 4: stop criterion met after 209,000 training "
            "sequences at T=500 (solved: abs. error < 0.04 in their target scaling)",
            ">= 99 % of test sequences solved with fewer than 209,000 training sequences",
            judge_adding,
            predictions="adding",
            smoke=(*SMOKE_SYNTHETIC, "data.seq_len=20"),
        ),
        Task(
            "copy_t50",
            "reference_copy_t50",
            "Copy-memory task, T=50",
            "Arjovsky et al. 2016: memoryless baseline CE 10 ln 8 / (T + 20) = 0.297",
            "test CE <= 1/10 of the memoryless baseline; recall accuracy reported",
            judge_copy,
            predictions="copy",
        ),
        Task(
            "japanese_vowels",
            "reference_japanese_vowels",
            "JapaneseVowels (UEA), official split",
            "LSTM-FCN 0.99, MLSTM-FCN 1.00 test accuracy (Karim et al. 2019)",
            "a plain (bi)LSTM >= 0.98 test accuracy",
            judge_accuracy(0.98),
            smoke=(),
        ),
        Task(
            "robustness",
            "reference_robustness",
            "Robustness: JapaneseVowels with missing steps and noise",
            "none published",
            f"JapaneseVowels >= 0.95 test accuracy with {ROBUSTNESS_MISSING:.0%} of steps "
            "missing (mask policy); noise and missing-step degradation curves",
            judge_robustness,
            predictions="robustness",
            smoke=(),
        ),
        Task(
            "airline",
            "reference_airline",
            "Airline passengers, split at 1959-01",
            "darts LSTM example: MAPE 2.71 % forecasting 6 months ahead (1959-06 .. 1960-12)",
            "MAPE <= 2.7 % on the same split and horizon",
            judge_airline,
            smoke=("ensemble.size=2",),
            ensemble=True,
        ),
        Task(
            "m1_yearly",
            "reference_m1_yearly",
            "M1 yearly (181 series), the last 6 years of each",
            "Godahewa et al. 2021, Monash archive, Table 2 mean MASE: TBATS 3.499 (best), "
            "ETS 3.771, Theta 4.191, N-BEATS 4.384, DeepAR 4.603",
            f"mean MASE below the best published ({M1_YEARLY_BEST}), or by how much it misses",
            judge_m1_yearly,
            smoke=(),
        ),
        Task(
            "addition",
            "reference_addition",
            "2-digit addition, seq2seq",
            "Keras addition_rnn: 99 % with 5,000 examples in 55 epochs",
            ">= 99 % exact match with 5,000 examples in fewer than 55 epochs",
            judge_addition,
        ),
        Task(
            "counting",
            "reference_counting",
            "The explainer's next-number example",
            "the explainer: [1, 2, 3] -> 4 with an LSTM(128), MSE, Adam",
            "every test prediction (inside the training range) within +-0.1",
            judge_counting,
            predictions="counting",
        ),
    )
}


# --------------------------------------------------------------------------- running


def compose(overrides: Sequence[str], run_dir: Path) -> Any:
    """Compose ``configs/train.yaml`` as the command line does; the run folder is ``run_dir``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from lstmkit.runtime._config_dir import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = hydra_compose("train", overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # for ${hydra:...} and the chosen config names
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        cfg.paths.log_dir = str(run_dir)
        del cfg["hydra"]
    GlobalHydra.instance().clear()
    return cfg


def prediction_figures(kind: str, cfg: Any, best: str, run_dir: Path) -> dict[str, float]:
    """Figures the logged metrics do not hold, from the best checkpoint's test predictions."""
    import torch
    from hydra.utils import instantiate

    from lstmkit.runtime import runs
    from lstmkit.runtime.checkpoints import load_task

    if not best:
        return {}
    model = load_task(best)
    datamodule = instantiate(cfg.data)
    if kind == "robustness":
        return robustness_figures(model, datamodule, run_dir)
    datamodule.setup("test")
    with torch.no_grad():
        out = runs.predict(model, datamodule)
    pred, target = out["pred"], out["target"]
    if kind == "adding":
        error = (pred.reshape(-1) - target.reshape(-1)).abs()
        return {"solved": float((error < ADDING_TOLERANCE).float().mean())}
    if kind == "counting":
        error = (pred.reshape(-1) - target.reshape(-1)).abs()
        return {
            "within": float((error < COUNTING_TOLERANCE).float().mean()),
            "max_abs_error": float(error.max()),
        }
    if kind == "copy":
        data = cfg.data
        steps = int(data.delay) + 2 * int(data.copy_len)
        recall = (pred.reshape(-1, steps) == target.reshape(-1, steps))[:, -int(data.copy_len) :]
        return {
            "recall_acc": float(recall.float().mean()),
            "memoryless_ce": int(data.copy_len) * math.log(int(data.num_symbols)) / steps,
        }
    raise ValueError(f"unknown prediction figures {kind!r}")


def robustness_figures(model: Any, datamodule: Any, run_dir: Path) -> dict[str, float]:
    """Test accuracy at every level of `ROBUSTNESS_LEVELS` (what ``lstmkit-robustness`` runs);
    writes ``robustness.csv`` and the curves ``robustness.png`` into the run folder."""
    from lstmkit.research.robustness import evaluate_robustness, write_csv
    from lstmkit.runtime import plots

    rows, _ = evaluate_robustness(model, datamodule, ROBUSTNESS_LEVELS, seed=0)
    write_csv(rows, run_dir / "robustness.csv")
    plots.plot_robustness(rows, ["test/acc"], run_dir / "robustness.png")
    figures = {f"acc_{r['perturbation']}_{r['level']:g}": float(r["test/acc"]) for r in rows}
    figures["acc_missing"] = figures[f"acc_missing_{ROBUSTNESS_MISSING:g}"]
    return figures


def training_sequences(cfg: Any) -> int | None:
    """Training sequences (windows, examples) per epoch."""
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    try:
        return len(loader.dataset)
    except TypeError:
        return sum(len(batch[0]) for batch in loader)


def run_one(task: Task, backend: str, run_dir: Path, smoke: bool) -> dict[str, Any]:
    """Train one task on one backend; metrics, figures, wall time and the command."""
    from lstmkit.cli.train import train

    overrides = [f"experiment={task.experiment}", *BACKENDS[backend], *COMMON]
    if smoke:
        overrides += [*SMOKE, *task.smoke]
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = compose(overrides, run_dir)
    if task.ensemble:
        return run_ensemble(task, backend, cfg, overrides, run_dir)
    start = time.perf_counter()
    metrics = train(cfg)
    wall = time.perf_counter() - start
    stored = json.loads((run_dir / "metrics.json").read_text())
    extra: dict[str, Any] = {"epochs": int(stored.get("epochs", 0))}
    if task.predictions:
        best = metrics.get("best_model_path", "")
        extra.update(prediction_figures(task.predictions, cfg, best, run_dir))
    per_epoch = training_sequences(cfg)
    outcome = task.judge(metrics, extra)
    return {
        "task": task.name,
        "backend": backend,
        "figure": outcome.figure,
        "reached": bool(outcome.reached),
        "epochs": extra["epochs"],
        "sequences_per_epoch": per_epoch,
        "sequences": None if per_epoch is None else per_epoch * extra["epochs"],
        "wall_time_s": wall,
        "command": "lstmkit-train " + " ".join(_quote(o) for o in overrides),
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
        "extra": extra,
        "run_dir": str(run_dir),
        "plots": sorted(p.name for p in run_dir.glob("*.png")),
    }


def run_ensemble(
    task: Task, backend: str, cfg: Any, overrides: Sequence[str], run_dir: Path
) -> dict[str, Any]:
    """Train the config's ``ensemble.size`` members (seeds ``seed`` .. ``seed + size - 1``)
    with ``lstmkit.cli.ensemble.train_ensemble``; the row's figure is the ensemble's, with every
    member's; epochs and sequences add up the members'; the plots are the ensemble's test
    predictions and the first member's (the default seed's single run) learning curves."""
    from lstmkit.cli.ensemble import train_ensemble

    start = time.perf_counter()
    result = train_ensemble(cfg, run_dir)
    wall = time.perf_counter() - start
    first = Path(result["member_dirs"][0]) / "learning_curves.png"
    if first.is_file():
        shutil.copyfile(first, run_dir / "learning_curves.png")
    extra: dict[str, Any] = {
        "epochs": sum(result["epochs"]),
        **{k: v for k, v in result.items() if k in ("seeds", "space") or "member_mape" in k},
        **{k: v for k, v in result.items() if k.startswith("val/mape")},
    }
    extra["member_epochs"] = result["epochs"]
    metrics = {k: v for k, v in result.items() if k.startswith("test/mape")}
    metrics["test/rmse"] = result["test/rmse"]
    per_epoch = training_sequences(cfg)
    outcome = task.judge(metrics, extra)
    return {
        "task": task.name,
        "backend": backend,
        "figure": outcome.figure,
        "reached": bool(outcome.reached),
        "epochs": extra["epochs"],
        "sequences_per_epoch": per_epoch,
        "sequences": None if per_epoch is None else per_epoch * extra["epochs"],
        "wall_time_s": wall,
        "command": "python -m lstmkit.cli.ensemble " + " ".join(_quote(o) for o in overrides),
        "metrics": metrics,
        "extra": extra,
        "run_dir": str(run_dir),
        "plots": sorted(p.name for p in run_dir.glob("*.png")),
    }


def _quote(override: str) -> str:
    return f"'{override}'" if any(c in override for c in " []{}~") else override


# --------------------------------------------------------------------------- markdown

PLOT_ORDER = (
    "learning_curves.png",
    "predictions.png",
    "confusion_matrix.png",
    "sequences.png",
    "robustness.png",
)


def copy_plots(row: dict[str, Any], image_dir: Path) -> list[str]:
    """Copy a run's PNGs to ``image_dir/<task>_<backend>_<plot>.png``; relative names."""
    image_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for plot in sorted(row["plots"], key=lambda p: PLOT_ORDER.index(p) if p in PLOT_ORDER else 99):
        target = image_dir / f"{row['task']}_{row['backend']}_{plot}"
        shutil.copyfile(Path(row["run_dir"]) / plot, target)
        names.append(f"{image_dir.name}/{target.name}")
    return names


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def machine() -> str:
    """CPU model and core count, e.g. ``AMD EPYC 9R14, 2 cores``."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()}"


def render(rows: list[dict[str, Any]], smoke: bool, argv: Sequence[str]) -> str:
    """The markdown for ``rows`` (their plots already copied beside it, ``row["images"]``)."""
    import torch

    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Reference results" + (" (SMOKE RUN: tiny sizes, figures meaningless)" if smoke else ""),
        "",
        "Generated by `scripts/reproduce.py` (last invocation: `python scripts/reproduce.py"
        + (" " + " ".join(argv) if argv else "")
        + f"` on {now}; tasks not rerun keep the rows of the run that produced them); do not "
        f"edit by hand. Machine: {machine()}, torch {torch.__version__}, "
        f"Python {platform.python_version()}. Each row is one run of `lstmkit.cli.train.train` "
        "(what `lstmkit-train` runs) with the command shown, or, for a task whose command is "
        "`python -m lstmkit.cli.ensemble`, a deep ensemble: one such run per seed (the config's "
        "`ensemble.size` seeds from its `seed` on), forecasts averaged, every member's figure "
        "beside the ensemble's; the wall time covers training, testing and plotting (all "
        "members). Figures are on the test split, from the best `val/loss` checkpoint(s), or "
        "the final weights where the protocol has no validation split (Airline). A goal that "
        "is not reached says so, with the figure reached.",
        "",
        "| task | backend | goal reached | lstmkit | wall time |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| [{TASKS[row['task']].title}](#{row['task']}) | {row['backend']} | "
            f"{'yes' if row['reached'] else '**no**'} | {_cell(row['figure'])} | "
            f"{row['wall_time_s']:.0f} s |"
        )
    for name in dict.fromkeys(row["task"] for row in rows):
        task = TASKS[name]
        task_rows = [row for row in rows if row["task"] == name]
        lines += [
            "",
            f'<a id="{name}"></a>',
            "",
            f"## {task.title}",
            "",
            f"Reference: {task.reference}. Goal: {task.goal}. "
            f"Protocol: `configs/experiment/{task.experiment}.yaml`.",
            "",
            "| backend | reference | lstmkit | goal reached | training sequences (epochs) "
            "| wall time | command |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        images: list[tuple[str, str]] = []
        for row in task_rows:
            reached = "yes" if row["reached"] else f"**no** (reached: {_cell(row['figure'])})"
            seqs = f"{_count(row['sequences'])} ({row['epochs']} x {_count(row['sequences_per_epoch'])})"
            lines.append(
                f"| {row['backend']} | {_cell(task.reference)} | {_cell(row['figure'])} | "
                f"{reached} | {seqs} | {row['wall_time_s']:.1f} s | `{_cell(row['command'])}` |"
            )
            images += [(row["backend"], p) for p in row.get("images", [])]
        lines.append("")
        for backend, path in images:
            lines.append(f"![{name} {backend}: {Path(path).stem}]({path})")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS), metavar="TASK",
        help=f"tasks to run (default: all): {', '.join(TASKS)}",
    )  # fmt: skip
    parser.add_argument(
        "--backends", nargs="+", choices=sorted(BACKENDS), default=None,
        help="restrict to these backends (default: each task's own list)",
    )  # fmt: skip
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, same code path")
    parser.add_argument(
        "--fresh", action="store_true",
        help="drop the tables of tasks not run now (default: keep them from results/results.json)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=None,
        help="folder for RESULTS.md, results/*.png and runs/ (default: docs/; --smoke: a temp dir)",
    )  # fmt: skip
    return parser.parse_args(argv)


def failed_row(task: Task, backend: str, run_dir: Path, error: BaseException) -> dict[str, Any]:
    """A row for a run that raised: the table says so instead of dropping the row."""
    first = (str(error).strip().splitlines() or [""])[0][:200]
    return {
        "task": task.name,
        "backend": backend,
        "figure": f"run failed: {type(error).__name__}: {first}",
        "reached": False,
        "epochs": 0,
        "sequences_per_epoch": None,
        "sequences": None,
        "wall_time_s": math.nan,
        "command": ("python -m lstmkit.cli.ensemble " if task.ensemble else "lstmkit-train ")
        + f"experiment={task.experiment} "
        + " ".join(BACKENDS[backend]),
        "metrics": {},
        "extra": {},
        "run_dir": str(run_dir),
        "plots": [],
    }


def previous_rows(results_json: Path) -> list[dict[str, Any]]:
    """Rows of an earlier invocation (tasks not rerun keep their table); [] if none."""
    try:
        rows = json.loads(results_json.read_text())
    except (OSError, ValueError):
        return []
    return [r for r in rows if isinstance(r, dict) and r.get("task") in TASKS]


def ordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names, backends = list(TASKS), list(BACKENDS)
    return sorted(rows, key=lambda r: (names.index(r["task"]), backends.index(r["backend"])))


def main(argv: Sequence[str] | None = None) -> Path:
    args = parse_args(argv)
    out_dir = args.out
    if out_dir is None:
        out_dir = Path(tempfile.mkdtemp(prefix="lstmkit-reproduce-")) if args.smoke else DEFAULT_OUT
    out_dir = out_dir.resolve()
    if args.smoke and out_dir == DEFAULT_OUT.resolve():
        sys.exit("reproduce.py: --smoke never writes docs/RESULTS.md: pass another --out")
    # run folders (checkpoints, logs) stay out of docs/: beside it only the markdown and PNGs
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    runs_root = (
        out_dir / "runs" if out_dir != DEFAULT_OUT.resolve() else REPO / "outputs" / "reproduce"
    ) / stamp
    image_dir = out_dir / "results"
    image_dir.mkdir(parents=True, exist_ok=True)
    results, results_json = out_dir / "RESULTS.md", image_dir / "results.json"
    plan = [
        (TASKS[name], backend)
        for name in args.tasks
        for backend in TASKS[name].backends
        if not args.backends or backend in args.backends
    ]
    rerun = {(task.name, backend) for task, backend in plan}
    # the tables of tasks not rerun now stay as the last real run left them (not in --smoke)
    kept = [] if args.smoke or args.fresh else previous_rows(results_json)
    rows = [r for r in kept if (r["task"], r["backend"]) not in rerun]
    shown_argv = list(sys.argv[1:] if argv is None else argv)
    for task, backend in plan:
        print(f"reproduce.py: {task.name} / {backend} ...", flush=True)
        run_dir = runs_root / task.name / backend
        try:
            row = run_one(task, backend, run_dir, args.smoke)
        except Exception as error:  # the table reports it; the next run goes on
            if args.smoke:
                raise
            row = failed_row(task, backend, run_dir, error)
        row["images"] = copy_plots(row, image_dir) if row["plots"] else []
        row["invocation"] = shown_argv
        row["date"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        rows.append(row)
        print(
            f"reproduce.py: {task.name} / {backend}: {row['figure']} "
            f"({'goal reached' if row['reached'] else 'goal NOT reached'}; "
            f"{row['wall_time_s']:.1f} s)",
            flush=True,
        )
        # after every run, so that an interrupted invocation keeps what it finished
        results_json.write_text(json.dumps(ordered(rows), indent=2) + "\n")
        results.write_text(render(ordered(rows), args.smoke, shown_argv))
    print(f"reproduce.py: wrote {results}")
    return results


if __name__ == "__main__":
    main()
