"""``lstmkit-ensemble``: train one config with several seeds, then average the members' forecasts.

A thin shell around :mod:`lstmkit.runtime.ensembles` (the members, the average, ``ensemble.json``
and the figures; its functions are re-exported here); ``main()`` is the command
(``lstmkit-ensemble``, ``python -m lstmkit.cli.ensemble``).

    lstmkit-ensemble experiment=reference_airline model.encoder.backend=custom trainer=cpu
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lstmkit._logging import get_logger
from lstmkit.runtime._config_dir import CONFIG_DIR, config_groups
from lstmkit.runtime.config_checks import check_argv, quiet_library_logging, run_cli
from lstmkit.runtime.ensembles import (
    DEFAULT_SIZE,
    DEFAULT_SPACE,
    MAPE_EPS,
    SPACES,
    average_forecasts,
    ensemble_figures,
    ensemble_settings,
    last_step,
    mape,
    member_seeds,
    predict_split,
    summary_lines,
    train_ensemble,
)
from lstmkit.runtime.quick_help import answer_help

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = get_logger(__name__)

#: The header of ``lstmkit-ensemble --help`` (the command shares ``lstmkit-train``'s config).
ENSEMBLE_HELP = """\
lstmkit-ensemble: train one config with several seeds, then average the members' forecasts.

Examples:
  lstmkit-ensemble experiment=reference_airline model.encoder.backend=custom trainer=cpu
  lstmkit-ensemble --cfg job                     # print the composed config

It takes lstmkit-train's overrides (the groups and settings below). ensemble.size members
(seeds seed .. seed+size-1) are averaged in ensemble.space (log or value); the defaults 5 and
log apply where the config has no ensemble: block (experiment=reference_airline has one), or
pass +ensemble.size=10.
"""


def _run(cfg: DictConfig) -> float:
    import lightning.pytorch  # noqa: F401  (sets up its loggers, which the next line quiets)
    from hydra.core.hydra_config import HydraConfig

    quiet_library_logging()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    result = run_cli("lstmkit-ensemble", lambda: train_ensemble(cfg, run_dir))
    print("\n".join(summary_lines(result)))
    print(f"Run folder: {run_dir} (ensemble.json; members in seed_<s>/)")
    return float(result["test/mape"])


def _hydra_main() -> None:
    """Hand the command line to Hydra, which composes the config and calls :func:`_run`
    (Hydra is imported here, not at the top: a bare ``--help`` answers without it)."""
    import hydra

    hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")(_run)()


def main() -> None:
    """``lstmkit-ensemble [OVERRIDES]`` (or ``python -m lstmkit.cli.ensemble``): the
    ``lstmkit-train`` overrides."""
    argv = sys.argv[1:]
    if answer_help(argv, "train", header=ENSEMBLE_HELP):  # from the config files, without Hydra
        return
    from lstmkit.runtime.override_checks import precheck

    command = "lstmkit-ensemble"
    run_cli(command, lambda: check_argv(argv, config_groups()))
    run_cli(command, lambda: precheck(command, "train", argv))
    _hydra_main()


__all__ = [
    "DEFAULT_SIZE",
    "DEFAULT_SPACE",
    "ENSEMBLE_HELP",
    "MAPE_EPS",
    "SPACES",
    "average_forecasts",
    "ensemble_figures",
    "ensemble_settings",
    "last_step",
    "main",
    "mape",
    "member_seeds",
    "predict_split",
    "summary_lines",
    "train_ensemble",
]


if __name__ == "__main__":
    main()
