"""``lstmkit-predict``: a checkpoint plus an input file -> a CSV of predictions.

    lstmkit-predict ckpt_path=RUN/checkpoints/best.ckpt input=new.csv [output=preds.csv]
                    [overwrite=true] [batch_size=256]

The input is a CSV/Parquet time series, an ``.npz``/``.ts`` file of sequences, or a text CSV —
whatever the checkpoint's datamodule reads. The preprocessing saved in the checkpoint (scaler
statistics, vocabulary, class names, missing-value policy, window and horizon) is applied
exactly; predictions are in the target's original units, with the class label and one
probability per class for classifiers. The checkpoint is read with
``torch.load(..., weights_only=True)``: it holds plain values and tensors only.

``predict(...)`` is importable; ``main()`` is the command. Nothing heavy is imported before the
arguments are parsed, so ``--help`` answers at once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from lstmkit._errors import DataFileError
from lstmkit._validation import check_int
from lstmkit.runtime.config_checks import ConfigError, run_cli

USAGE = __doc__.split("\n\n")[1]
#: The command line's keys -> :func:`predict`'s arguments.
KEYS = {
    "ckpt_path": "ckpt_path",
    "input": "input_path",
    "output": "output",
    "overwrite": "overwrite",
    "batch_size": "batch_size",
}


def default_output(input_path: str | Path) -> Path:
    """``data/new.csv`` -> ``data/new.predictions.csv``."""
    p = Path(input_path)
    return p.with_name(f"{p.stem}.predictions.csv")


def resolve_output(input_path: str | Path, output: str | Path | None) -> Path:
    """The CSV to write: ``output``, or ``<input stem>.predictions.csv`` beside the input, or
    inside ``output`` when it names an existing folder."""
    if output is None:
        return default_output(input_path)
    output = Path(output)
    if output.is_dir():
        return output / default_output(input_path).name
    return output


def check_values(args: dict[str, Any]) -> None:
    """:func:`predict`'s rules for its values (one place, for Python callers and the command).

    Raises:
        ConfigError: ``batch_size`` is not an integer >= 1.
    """
    if "batch_size" in args:
        try:
            check_int("batch_size", args["batch_size"])
        except (TypeError, ValueError) as err:
            raise ConfigError(str(err)) from None


def _check_path_argument(name: str, value: Any) -> None:
    if not isinstance(value, str | Path):
        raise TypeError(f"{name}={type(value).__name__}: must be a path (str or pathlib.Path)")


def predict(
    ckpt_path: str | Path,
    input_path: str | Path,
    output: str | Path | None = None,
    *,
    overwrite: bool = False,
    batch_size: int = 256,
) -> Any:
    """Predict every sample of ``input_path`` with a checkpoint; write and return the CSV.

    Returns:
        The predictions as a pandas DataFrame (also written to ``output``).

    Raises:
        ConfigError: a bad checkpoint or an output file that exists (without ``overwrite``).
        DataFileError: a bad input file (names the file and the problem).
    """
    check_values({"batch_size": batch_size})
    _check_path_argument("ckpt_path", ckpt_path)
    _check_path_argument("input_path", input_path)
    if output is not None:
        _check_path_argument("output", output)
    output = resolve_output(input_path, output)
    if output.exists() and not overwrite:
        raise ConfigError(f"output={str(output)!r} exists: pass overwrite=true to replace it")
    ckpt_path = Path(ckpt_path)
    if not ckpt_path.is_file():
        raise ConfigError(f"ckpt_path={str(ckpt_path)!r} is not a file: pass a .ckpt of a run")
    if not Path(input_path).exists():
        raise DataFileError(input_path, "no such file")

    from lstmkit.data.filebase import FileDataModule
    from lstmkit.runtime.checkpoints import datamodule_class, load_checkpoint, load_task
    from lstmkit.runtime.guards import check_output_dir

    check_output_dir(output.parent, "output")
    # weights_only=True and allow-listed lstmkit classes only: see lstmkit.runtime.checkpoints
    checkpoint = load_checkpoint(ckpt_path)
    dm_cls = datamodule_class(checkpoint, ckpt_path)
    if dm_cls is None:
        raise ConfigError(
            f"ckpt_path={str(ckpt_path)!r} names no lstmkit task and datamodule: pass a "
            "checkpoint written by lstmkit-train"
        )
    if not issubclass(dm_cls, FileDataModule):
        raise ConfigError(
            f"ckpt_path={str(ckpt_path)!r} was trained on {dm_cls.__name__}, which reads no "
            "files: lstmkit-predict needs a model trained on data=csv, sequences, text or a "
            "named dataset"
        )
    datamodule = dm_cls(**checkpoint.get("datamodule_hyper_parameters", {}))
    state = checkpoint.get(dm_cls.__qualname__)
    if not state:
        raise ConfigError(f"ckpt_path={str(ckpt_path)!r} holds no fitted preprocessing")
    datamodule.load_state_dict(state)

    model = load_task(ckpt_path, checkpoint=checkpoint)

    encoded = datamodule.encode_file(str(input_path))
    outputs = run_model(model, encoded.dataset, batch_size)
    frame = datamodule.format_predictions(outputs, encoded)
    output.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(output, index=False)
    return frame


def run_model(model: Any, dataset: Any, batch_size: int) -> dict[str, Any]:
    """``predict_step`` over a dataset in batches of ``(x, lengths)``; outputs concatenated."""
    import torch

    outputs: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            x, _, lengths = dataset.__getitems__(
                list(range(start, min(start + batch_size, len(dataset))))
            )
            for key, value in model.predict_step((x, lengths), 0).items():
                outputs.setdefault(key, []).append(value)
    return {key: torch.cat(values) for key, values in outputs.items()}


def parse_args(argv: list[str]) -> dict[str, Any]:
    """``key=value`` arguments -> :func:`predict` arguments, parsed as every lstmkit command
    parses its overrides (Hydra's grammar) and checked against :func:`predict` itself
    (`lstmkit.runtime.override_checks.parse_arguments`).

    Raises:
        ConfigError: the first bad argument, in one line naming its key.
    """
    from lstmkit.runtime.override_checks import parse_arguments

    return parse_arguments(argv, predict, KEYS, check=check_values)


def main(argv: list[str] | None = None) -> None:
    """``lstmkit-predict ckpt_path=PATH input=PATH [output=PATH] [overwrite=true]``."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage:\n{USAGE}")
        return

    def run() -> None:
        args = parse_args(argv)
        frame = predict(**args)
        out = resolve_output(args["input_path"], args.get("output"))
        print(f"{len(frame)} predictions written to {out}")

    run_cli("lstmkit-predict", run)


if __name__ == "__main__":
    main()
