"""``lstmkit-inspect``: gate heatmaps and summaries of a finished run.

``inspect_gates(cfg)`` is importable; ``main()`` is the command (``lstmkit-inspect``,
``python -m lstmkit.cli.inspect``). Records i, f, g, o, c and h of the encoder for chosen
sequences of the validation (or test) split — for a model trained with either backend — and
writes ``gates_sample<id>.png``, ``gate_summary.png`` and ``gate_summary.json``.
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


def inspect_gates(cfg: DictConfig) -> dict[str, Any]:
    """Record and plot the gates of ``cfg.ckpt_path`` on ``cfg.samples`` of ``cfg.split``.

    Returns:
        ``{"files": [paths written], "out_dir": str, "summary": {...}}``.
    """
    import json

    import torch

    from lstmkit.research.gates import pick_samples, save_gate_report
    from lstmkit.research.loading import load_run
    from lstmkit.runtime import runs

    check_config(cfg)
    if cfg.split not in ("val", "test"):
        raise ConfigError(f"split={cfg.split!r} is not allowed: choose one of val, test")
    samples = [int(s) for s in cfg.samples]
    if not samples or min(samples) < 0:
        raise ConfigError(f"samples={samples} is not allowed: give indices >= 0")
    with runs.torch_threads(cfg.get("num_threads")):
        torch.manual_seed(int(cfg.seed))
        model, datamodule = load_run(cfg.ckpt_path, cfg.get("data"))
        check_layer(cfg.layer, model)
        datamodule.setup("fit")
        loader = getattr(datamodule, f"{cfg.split}_dataloader")()
        try:
            batch = pick_samples(loader.dataset, loader, samples)
        except (IndexError, ValueError) as err:
            raise ConfigError(f"samples={samples}: {err}") from err
        out_dir = Path(cfg.out_dir) if cfg.get("out_dir") else Path(cfg.paths.output_dir)
        files = save_gate_report(model, batch, out_dir, samples, int(cfg.layer), cfg.threshold)
    summary = json.loads((out_dir / "gate_summary.json").read_text())
    return {"files": [str(f) for f in files], "out_dir": str(out_dir), "summary": summary}


def check_layer(layer: Any, model: Any) -> int:
    """``layer`` must be a row of the recording: ``-rows .. rows - 1`` for an encoder of
    ``num_layers * num_directions`` rows."""
    encoder = model.encoder
    directions = 2 if getattr(encoder, "bidirectional", False) else 1
    rows = int(getattr(encoder, "num_layers", 1)) * directions
    if isinstance(layer, bool) or not isinstance(layer, int) or not -rows <= layer < rows:
        shape = f"{rows // directions} layer(s) x {directions} direction(s)"
        raise ConfigError(
            f"layer={layer!r} is not allowed: the model has {shape}, so layer must be an "
            f"integer in -{rows}..{rows - 1} (-1: the top layer)"
        )
    return layer


def _run(cfg: DictConfig) -> None:
    from lstmkit.runtime.config_checks import quiet_library_logging

    quiet_library_logging()
    result = run_cli("lstmkit-inspect", lambda: inspect_gates(cfg), run_dir=_run_dir())
    summary = result["summary"]
    print(f"Forget gate mean over the valid steps: {summary['forget_gate_mean_overall']:.3f}")
    saturated = ", ".join(f"{k} {v:.3f}" for k, v in summary["saturated_fraction"].items())
    print(
        f"Saturated fraction (< {summary['threshold']} or > {1 - summary['threshold']}): "
        f"{saturated}"
    )
    print(f"Wrote {len(result['files'])} files to {result['out_dir']}")


def _hydra_main() -> None:
    """Hand the command line to Hydra, which composes the config and calls :func:`_run`
    (Hydra is imported here, not at the top: a bare ``--help`` answers without it)."""
    import hydra

    hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="inspect")(_run)()


def main() -> None:
    """``lstmkit-inspect ckpt_path=PATH [OVERRIDES]``; see ``lstmkit-inspect --help``."""
    argv = sys.argv[1:]
    if answer_help(argv, "inspect"):  # from the config files, without Hydra
        return
    from lstmkit.runtime.guards import check_argv_run_dir
    from lstmkit.runtime.override_checks import precheck

    run_cli("lstmkit-inspect", lambda: check_argv(argv, config_groups()))
    run_cli("lstmkit-inspect", lambda: check_argv_run_dir(argv))
    run_cli("lstmkit-inspect", lambda: precheck("lstmkit-inspect", "inspect", argv))
    _hydra_main()


def _run_dir() -> str:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.output_dir


if __name__ == "__main__":
    main()
