"""``lstmkit-export``: ONNX graphs of a checkpoint (full sequence and single step).

``export(cfg)`` is importable; ``main()`` is the command (``lstmkit-export``,
``python -m lstmkit.cli.export``). See :mod:`lstmkit.research.onnx_export` for the graphs' inputs
and outputs. Existing files are replaced only with ``overwrite=true``.
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

FORMATS = ("onnx",)


def export(cfg: DictConfig) -> dict[str, Any]:
    """Export ``cfg.ckpt_path`` to ``cfg.out_dir`` (default ``<run>/export``).

    Returns:
        ``{"files": {graph: path}, "max_abs_diff": {graph: float}}`` (diffs only with
        ``verify``).
    """
    from lstmkit.research.loading import run_folder
    from lstmkit.runtime import runs

    check_config(cfg)
    if cfg.format not in FORMATS:
        raise ConfigError(
            f"format={cfg.format!r} is not allowed: choose one of {', '.join(FORMATS)}"
        )
    chosen = cfg.get("graphs")  # null: every graph that computes the model exactly
    graphs = None if chosen is None else [chosen] if isinstance(chosen, str) else list(chosen)
    out_dir = Path(cfg.out_dir) if cfg.get("out_dir") else run_folder(cfg.ckpt_path) / "export"
    with runs.torch_threads(cfg.get("num_threads")):
        from lstmkit.research.onnx_export import GRAPHS, ExportError, check_onnx, export_onnx
        from lstmkit.runtime.checkpoints import load_task

        bad = graphs is not None and [g for g in graphs if g not in GRAPHS]
        if bad or graphs == []:
            raise ConfigError(f"graphs={graphs} is not allowed: choose from {', '.join(GRAPHS)}")
        model = load_task(cfg.ckpt_path)
        try:
            files = export_onnx(
                model, out_dir, None if graphs is None else tuple(graphs), bool(cfg.overwrite)
            )
        except (ExportError, ImportError) as err:
            raise ConfigError(str(err)) from err
        diffs = {}
        if cfg.verify:
            try:
                diffs = check_onnx(model, files)
            except ImportError as err:
                raise ConfigError(
                    "verify=true needs onnxruntime: pip install 'lstmkit[export]' (or verify=false)"
                ) from err
    return {"files": {g: str(p) for g, p in files.items()}, "max_abs_diff": diffs}


def _run(cfg: DictConfig) -> None:
    from lstmkit.runtime.config_checks import quiet_library_logging

    quiet_library_logging()
    result = run_cli("lstmkit-export", lambda: export(cfg))
    for graph, path in result["files"].items():
        diff = result["max_abs_diff"].get(graph)
        check = "" if diff is None else f"  (onnxruntime vs PyTorch: max |diff| {diff:.2e})"
        print(f"{graph:>4}: {path}{check}")


def _hydra_main() -> None:
    """Hand the command line to Hydra, which composes the config and calls :func:`_run`
    (Hydra is imported here, not at the top: a bare ``--help`` answers without it)."""
    import hydra

    hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")(_run)()


def main() -> None:
    """``lstmkit-export ckpt_path=PATH [format=onnx] [OVERRIDES]``; see ``lstmkit-export --help``."""
    argv = sys.argv[1:]
    if answer_help(argv, "export"):  # from the config files, without Hydra
        return
    from lstmkit.runtime.override_checks import precheck

    run_cli("lstmkit-export", lambda: check_argv(argv, config_groups()))
    run_cli("lstmkit-export", lambda: precheck("lstmkit-export", "export", argv))
    _hydra_main()


if __name__ == "__main__":
    main()
