"""``lstmkit-robustness``: test metrics of a checkpoint under noise, missing steps, truncation.

``robustness(cfg)`` is importable; ``main()`` is the command (``lstmkit-robustness``,
``python -m lstmkit.robustness``). Writes ``robustness.csv`` (one row per perturbation and
level, every test metric) and ``robustness.png`` (the degradation curves); the clean level of
each perturbation is the plain test metric. See :mod:`lstmkit.research.robustness`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from lstmkit._config_dir import CONFIG_DIR, config_groups
from lstmkit._logging import get_logger
from lstmkit.config_checks import ConfigError, check_argv, check_config, run_cli

log = get_logger(__name__)


def robustness(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt_path`` at every level of ``cfg.noise``/``missing``/``truncate``.

    Returns:
        ``{"rows": [...], "clean": {test metrics}, "csv": path, "png": path}``.
    """
    import lightning.pytorch as pl

    from lstmkit import plots, runs
    from lstmkit.research.loading import load_run
    from lstmkit.research.robustness import evaluate_robustness, main_metrics, write_csv

    check_config(cfg)
    levels = {}
    for kind in ("noise", "missing", "truncate"):
        values = cfg.get(kind) or []
        try:
            levels[kind] = sorted((float(v) for v in values), reverse=kind == "truncate")
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{kind}={list(values)!r} is not allowed: give numbers") from err
    levels = {k: v for k, v in levels.items() if v}
    if not levels:
        raise ConfigError("noise, missing and truncate are all empty: give at least one level")
    with runs.torch_threads(cfg.get("num_threads")), runs.expected_warnings_ignored():
        pl.seed_everything(int(cfg.seed), verbose=False)
        model, datamodule = load_run(cfg.ckpt_path, cfg.get("data"))
        try:
            rows, clean = evaluate_robustness(model, datamodule, levels, seed=int(cfg.seed))
        except ValueError as err:
            raise ConfigError(str(err).splitlines()[0]) from err
    out_dir = Path(cfg.paths.output_dir)
    csv_path = write_csv(rows, out_dir / "robustness.csv")
    columns = [k for k in rows[0] if k not in ("perturbation", "level")]
    png = plots.plot_robustness(rows, main_metrics(columns), out_dir / "robustness.png")
    return {"rows": rows, "clean": clean, "csv": str(csv_path), "png": str(png)}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="robustness")
def _hydra_main(cfg: DictConfig) -> None:
    import lightning.pytorch  # noqa: F401

    from lstmkit.config_checks import quiet_library_logging
    from lstmkit.research.robustness import main_metrics

    quiet_library_logging()
    result = run_cli("lstmkit-robustness", lambda: robustness(cfg), run_dir=_run_dir())
    rows = result["rows"]
    shown = main_metrics([k for k in rows[0] if k not in ("perturbation", "level")])
    print(f"  {'perturbation':<12} {'level':>6} " + " ".join(f"{m:>16}" for m in shown))
    for row in rows:
        values = " ".join(f"{row[m]:>16.4g}" for m in shown)
        print(f"  {row['perturbation']:<12} {row['level']:>6g} {values}")
    print(f"Wrote {result['csv']} and {result['png']}")


def main() -> None:
    """``lstmkit-robustness ckpt_path=PATH [OVERRIDES]``; see ``lstmkit-robustness --help``."""
    from lstmkit.guards import check_argv_run_dir
    from lstmkit.override_checks import precheck

    argv = sys.argv[1:]
    run_cli("lstmkit-robustness", lambda: check_argv(argv, config_groups()))
    run_cli("lstmkit-robustness", lambda: check_argv_run_dir(argv))
    run_cli("lstmkit-robustness", lambda: precheck("lstmkit-robustness", "robustness", argv))
    _hydra_main()


def _run_dir() -> str:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.output_dir


if __name__ == "__main__":
    main()
