"""``scripts/reproduce.py --smoke``: the reference-results script's code path at tiny sizes."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "reproduce.py"
SMOKE_TASKS = ("adding_t100", "copy_t50", "counting", "robustness")


def _load_script():
    spec = importlib.util.spec_from_file_location("lstmkit_reproduce_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reproduce():
    module = _load_script()
    yield module
    sys.modules.pop("lstmkit_reproduce_script", None)
    GlobalHydra.instance().clear()


@pytest.fixture(scope="module")
def smoke_run(reproduce, tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    results = reproduce.main(["--smoke", "--tasks", *SMOKE_TASKS, "--out", str(out)])
    return out, results


def test_every_task_has_its_experiment_config(reproduce):
    for task in reproduce.TASKS.values():
        path = REPO / "configs" / "experiment" / f"{task.experiment}.yaml"
        assert path.is_file(), path
        text = path.read_text()
        assert "reference:" in text and "protocol:" in text and "budget:" in text, path


@pytest.mark.slow
def test_smoke_writes_one_table_per_task_with_plots(smoke_run, reproduce):
    out, results = smoke_run
    assert results == out / "RESULTS.md"
    markdown = results.read_text()
    assert "SMOKE RUN" in markdown
    header = "| backend | reference | lstmkit | goal reached | training sequences (epochs) "
    assert markdown.count(header) == len(SMOKE_TASKS)
    for name in SMOKE_TASKS:
        task = reproduce.TASKS[name]
        assert f"## {task.title}" in markdown
        for backend in task.backends:
            row = re.search(
                rf"^\| {backend} \| .*experiment={task.experiment} .*\|$", markdown, re.M
            )
            assert row, (name, backend)
            assert "**no** (reached: " in row.group(0) or "| yes |" in row.group(0)
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert images
    for image in images:
        path = out / image
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", image
    for name in SMOKE_TASKS:
        assert any(Path(i).name.startswith(f"{name}_") for i in images), name
    # the adding problem runs on three backends, the layer-norm variant included
    assert {"cudnn", "custom", "layernorm"} <= set(re.findall(r"adding_t100_(\w+?)_", markdown))


@pytest.mark.slow
def test_smoke_records_figures_from_the_runs(smoke_run):
    out, _ = smoke_run
    rows = json.loads((out / "results" / "results.json").read_text())
    assert {row["task"] for row in rows} == set(SMOKE_TASKS)
    for row in rows:
        synthetic = row["task"] != "robustness"  # JapaneseVowels keeps its 230 sequences
        assert row["epochs"] == 1 and (row["sequences"] == 64 or not synthetic), row
        assert row["wall_time_s"] > 0
    extras = {row["task"]: row["extra"] for row in rows}
    assert 0.0 <= extras["adding_t100"]["solved"] <= 1.0
    assert 0.0 <= extras["copy_t50"]["recall_acc"] <= 1.0
    assert extras["copy_t50"]["memoryless_ce"] == pytest.approx(10 * 2.0794415 / 70, rel=1e-6)
    assert extras["counting"]["max_abs_error"] >= 0.0
    robustness = extras["robustness"]
    assert 0.0 <= robustness["acc_missing"] <= 1.0
    assert robustness["acc_missing"] == robustness["acc_missing_0.2"]
    assert {"acc_noise_1", "acc_missing_0.5"} <= robustness.keys()
    assert (out / "results" / "robustness_custom_robustness.png").is_file()


def test_smoke_never_overwrites_docs_results(reproduce):
    with pytest.raises(SystemExit, match=r"never writes docs/RESULTS\.md"):
        reproduce.main(["--smoke", "--tasks", "counting", "--out", str(REPO / "docs")])


def test_full_mode_keeps_other_tasks_and_reports_failures(reproduce, tmp_path, monkeypatch):
    """Without --smoke, a --tasks subset keeps the other tasks' rows; a failing run is a row."""

    def fake_run(task, backend, run_dir, smoke):
        assert not smoke
        if task.name == "airline":
            raise RuntimeError("no data\nmore")
        return {
            "task": task.name, "backend": backend, "figure": "fake 1.0", "reached": True,
            "epochs": 3, "sequences_per_epoch": 10, "sequences": 30, "wall_time_s": 1.5,
            "command": f"lstmkit-train experiment={task.experiment}", "metrics": {}, "extra": {},
            "run_dir": str(run_dir), "plots": [],
        }  # fmt: skip

    monkeypatch.setattr(reproduce, "run_one", fake_run)
    reproduce.main(["--tasks", "counting", "--out", str(tmp_path)])
    results = reproduce.main(["--tasks", "airline", "--backends", "custom", "--out", str(tmp_path)])
    markdown = results.read_text()
    assert "SMOKE" not in markdown
    assert "## The explainer's next-number example" in markdown  # kept from the first call
    assert "fake 1.0" in markdown and "| yes |" in markdown
    assert "**no** (reached: run failed: RuntimeError: no data)" in markdown
    rows = json.loads((tmp_path / "results" / "results.json").read_text())
    assert [(r["task"], r["backend"]) for r in rows] == [
        ("airline", "custom"), ("counting", "cudnn"), ("counting", "custom"),
    ]  # fmt: skip
    fresh = reproduce.main(["--fresh", "--tasks", "addition", "--out", str(tmp_path)])
    assert "next-number" not in fresh.read_text()


def test_airline_row_is_an_ensemble_with_every_member(reproduce, tmp_path, monkeypatch):
    """The airline task trains the config's ensemble (seeds 42..46) and its row gives the
    ensemble's MAPE six months ahead (the last horizon step, darts' backtest figure) with each
    member's beside it."""
    import lstmkit.cli.ensemble

    calls = []

    def fake_train_ensemble(cfg, run_dir):
        calls.append((int(cfg.ensemble.size), cfg.ensemble.space, int(cfg.seed), run_dir))
        return {
            "seeds": [42, 43, 44, 45, 46], "space": "log",
            "test/mape": 0.022, "test/member_mape": [0.03, 0.03, 0.02, 0.03, 0.03],
            "test/mape_last": 0.026,
            "test/member_mape_last": [0.0304, 0.0297, 0.0226, 0.0276, 0.0293],
            "test/rmse": 13.0, "epochs": [300] * 5,
            "member_dirs": [str(run_dir / f"seed_{s}") for s in range(42, 47)],
        }  # fmt: skip

    monkeypatch.setattr(lstmkit.cli.ensemble, "train_ensemble", fake_train_ensemble)
    row = reproduce.run_one(reproduce.TASKS["airline"], "custom", tmp_path / "run", smoke=False)
    assert calls == [(5, "log", 42, tmp_path / "run")]
    assert row["reached"] is True  # 2.60 % <= 2.7 %
    assert row["figure"].startswith(
        "MAPE 2.60% 6 months ahead (all six steps: 2.20%, RMSE 13.0): ensemble of 5 seeds (42-46"
    )
    # each member's figure and their mean (2.792 %) are in the row
    assert (
        "members' MAPE 6 months ahead 3.04%, 2.97%, 2.26%, 2.76%, 2.93% (mean 2.79%)"
        in (row["figure"])
    )
    # 5 members x 300 epochs over the 101 training windows (1949-01 .. 1958-12, 20 months each)
    assert row["epochs"] == 1500 and row["sequences"] == 1500 * 101
    assert row["command"].startswith("python -m lstmkit.cli.ensemble experiment=reference_airline")
    metrics = {"test/mape": 0.02, "test/mape_last": 0.0271, "test/rmse": 1.0}
    assert not reproduce.judge_airline(metrics, {}).reached
