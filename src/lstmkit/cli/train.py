"""``lstmkit-train``: fit a task on a datamodule, then test the best checkpoint.

A thin shell: :func:`lstmkit.runtime.training.train` does the work (re-exported here as
``train``); ``main()`` is the command (``lstmkit-train``, ``python -m lstmkit.cli.train``): the
pre-start checks, then Hydra. Nothing heavy is imported before the config is checked.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from lstmkit._logging import get_logger
from lstmkit.runtime._config_dir import CONFIG_DIR, config_groups
from lstmkit.runtime.config_checks import check_argv, quiet_library_logging, run_cli
from lstmkit.runtime.guards import check_argv_run_dir
from lstmkit.runtime.quick_help import answer_help
from lstmkit.runtime.training import train

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = get_logger(__name__)


def _run(cfg: DictConfig) -> float | None:
    import lightning.pytorch  # noqa: F401  (sets up its loggers, which the next line quiets)

    quiet_library_logging()
    metrics = run_cli("lstmkit-train", lambda: train(cfg), run_dir=_run_dir())
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank == 0:
        from hydra.core.hydra_config import HydraConfig

        print("\n".join(metrics["summary"]))
        print(f"Run folder: {HydraConfig.get().runtime.output_dir}")
    # what a sweeper (hparams_search/) minimises: `optimized_metric`, by default test/loss
    loss = metrics.get(cfg.get("optimized_metric") or "test/loss")
    return None if loss is None else float(loss)


def _hydra_main() -> None:
    """Hand the command line to Hydra, which composes the config and calls :func:`_run`
    (Hydra is imported here, not at the top: a bare ``--help`` answers without it)."""
    import hydra

    hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")(_run)()


def main() -> None:
    """``lstmkit-train [OVERRIDES]``; see ``lstmkit-train --help``."""
    argv = sys.argv[1:]
    if answer_help(argv, "train"):  # from the config files, without Hydra
        return
    from lstmkit.runtime.override_checks import precheck

    run_cli("lstmkit-train", lambda: check_argv(argv, config_groups()))
    run_cli("lstmkit-train", lambda: check_argv_run_dir(argv))
    run_cli("lstmkit-train", lambda: precheck("lstmkit-train", "train", argv))
    _hydra_main()


def _run_dir() -> str:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.output_dir


__all__ = ["main", "train"]


if __name__ == "__main__":
    main()
