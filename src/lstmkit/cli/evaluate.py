"""``lstmkit-eval``: test a checkpoint on a datamodule.

A thin shell: :func:`lstmkit.runtime.evaluation.evaluate` does the work (re-exported here as
``evaluate``); ``main()`` is the command (``lstmkit-eval``, ``python -m lstmkit.cli.evaluate``).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from lstmkit._logging import get_logger
from lstmkit.runtime._config_dir import CONFIG_DIR, config_groups
from lstmkit.runtime.config_checks import (
    check_argv,
    quiet_library_logging,
    run_cli,
)
from lstmkit.runtime.evaluation import evaluate
from lstmkit.runtime.quick_help import answer_help

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = get_logger(__name__)


def _run(cfg: DictConfig) -> None:
    import lightning.pytorch  # noqa: F401

    quiet_library_logging()
    metrics = run_cli("lstmkit-eval", lambda: evaluate(cfg), run_dir=_run_dir())
    from hydra.core.hydra_config import HydraConfig

    print("\n".join(metrics["summary"]))
    print(f"Run folder: {HydraConfig.get().runtime.output_dir}")


def _hydra_main() -> None:
    """Hand the command line to Hydra, which composes the config and calls :func:`_run`
    (Hydra is imported here, not at the top: a bare ``--help`` answers without it)."""
    import hydra

    hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")(_run)()


def main() -> None:
    """``lstmkit-eval ckpt_path=PATH [OVERRIDES]``; see ``lstmkit-eval --help``."""
    argv = sys.argv[1:]
    if answer_help(argv, "eval"):  # from the config files, without Hydra
        return
    from lstmkit.runtime.guards import check_argv_run_dir
    from lstmkit.runtime.override_checks import precheck

    run_cli("lstmkit-eval", lambda: check_argv(argv, config_groups()))
    run_cli("lstmkit-eval", lambda: check_argv_run_dir(argv))
    run_cli("lstmkit-eval", lambda: precheck("lstmkit-eval", "eval", argv))
    _hydra_main()


def _run_dir() -> str:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.output_dir


__all__ = ["evaluate", "main"]


if __name__ == "__main__":
    main()
