"""``lstmkit-robustness``: test metrics of a checkpoint under noise, missing steps, truncation.

``robustness(cfg)`` is importable; ``main()`` is the command (``lstmkit-robustness``,
``python -m lstmkit.cli.robustness``). Writes ``robustness.csv`` (one row per perturbation and
level, every test metric) and ``robustness.png`` (the degradation curves); the clean level of
each perturbation is the plain test metric. See :mod:`lstmkit.research.robustness`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lstmkit._logging import get_logger
from lstmkit.runtime._config_dir import CONFIG_DIR, config_groups
from lstmkit.runtime.config_checks import ConfigError, check_argv, check_config, run_cli
from lstmkit.runtime.quick_help import answer_help

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = get_logger(__name__)


def robustness(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt_path`` at every level of ``cfg.noise``/``missing``/``truncate``.

    Returns:
        ``{"rows": [...], "clean": {test metrics}, "csv": path, "png": path}``.
    """
    import lightning.pytorch as pl

    from lstmkit.research.loading import load_run
    from lstmkit.research.robustness import evaluate_robustness, main_metrics, write_csv
    from lstmkit.runtime import plots, runs

    check_config(cfg)
    levels = {kind: perturbation_levels(kind, cfg.get(kind)) for kind in RANGES}
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


#: Allowed levels: ``(low, high, low_inclusive)`` and the meaning, per perturbation.
RANGES = {
    "noise": (0.0, float("inf"), True, "a noise std >= 0"),
    "missing": (0.0, 1.0, True, "a fraction of steps in [0, 1]"),
    "truncate": (0.0, 1.0, False, "a kept fraction in (0, 1]"),
}


def perturbation_levels(kind: str, values: Any) -> list[float]:
    """The levels of one perturbation, sorted (a single number is one level; null or [] none).

    Raises:
        ConfigError: a level that is not a number or lies outside :data:`RANGES`.
    """
    from omegaconf import ListConfig

    if values is None:
        return []
    if not isinstance(values, list | tuple | ListConfig):
        values = [values]
    low, high, low_inclusive, meaning = RANGES[kind]
    levels = []
    for value in values:
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        above = number is not None and (number >= low if low_inclusive else number > low)
        if number is None or not above or number > high:
            shown = "[" + ", ".join(repr(v) for v in values) + "]"
            raise ConfigError(
                f"{kind}={shown} is not allowed: each level must be {meaning}, e.g. "
                f"{kind}=[{'1.0,0.5' if kind == 'truncate' else '0,0.5'}]"
            )
        levels.append(float(number))
    return sorted(levels, reverse=kind == "truncate")


def _run(cfg: DictConfig) -> None:
    import lightning.pytorch  # noqa: F401

    from lstmkit.research.robustness import main_metrics
    from lstmkit.runtime.config_checks import quiet_library_logging

    quiet_library_logging()
    result = run_cli("lstmkit-robustness", lambda: robustness(cfg), run_dir=_run_dir())
    rows = result["rows"]
    shown = main_metrics([k for k in rows[0] if k not in ("perturbation", "level")])
    print(f"  {'perturbation':<12} {'level':>6} " + " ".join(f"{m:>16}" for m in shown))
    for row in rows:
        values = " ".join(f"{row[m]:>16.4g}" for m in shown)
        print(f"  {row['perturbation']:<12} {row['level']:>6g} {values}")
    print(f"Wrote {result['csv']} and {result['png']}")


def _hydra_main() -> None:
    """Hand the command line to Hydra, which composes the config and calls :func:`_run`
    (Hydra is imported here, not at the top: a bare ``--help`` answers without it)."""
    import hydra

    hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="robustness")(_run)()


def main() -> None:
    """``lstmkit-robustness ckpt_path=PATH [OVERRIDES]``; see ``lstmkit-robustness --help``."""
    argv = sys.argv[1:]
    if answer_help(argv, "robustness"):  # from the config files, without Hydra
        return
    from lstmkit.runtime.guards import check_argv_run_dir
    from lstmkit.runtime.override_checks import precheck

    run_cli("lstmkit-robustness", lambda: check_argv(argv, config_groups()))
    run_cli("lstmkit-robustness", lambda: check_argv_run_dir(argv))
    run_cli("lstmkit-robustness", lambda: precheck("lstmkit-robustness", "robustness", argv))
    _hydra_main()


def _run_dir() -> str:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.output_dir


if __name__ == "__main__":
    main()
