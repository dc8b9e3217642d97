"""Samples/s of lstmkit-train's fit loop vs a hand-written PyTorch loop: same model, data, batch.

The model and data are the explainer's classifier (``experiment=seed_classifier``: waveforms,
LSTM(128) -> Linear, Adam, batch 32). Both loops do, per epoch, the training batches (forward,
backward, gradient clipping at norm 1, optimizer step, accuracy/F1/AUROC updates) and a
validation pass with the same metrics. lstmkit's loop is ``trainer.fit`` built from the real
configs exactly as ``lstmkit-train`` builds it (callbacks: checkpoints, early stopping, fault
tolerance; CSV logger), minus the progress bar and model summary. Runs are interleaved and the
medians compared.

    python scripts/benchmark_loop.py                  # 5 rounds of 2 epochs each
    python scripts/benchmark_loop.py --rounds 9 --epochs 3 --backend custom
    python scripts/benchmark_loop.py --keras-python /tmp/kerasenv/bin/python  # + Keras 3 fit

Keras runs in its own environment (``scripts/benchmark_keras.py``, ``KERAS_BACKEND`` from
``--keras-backend``) on the same padded data, masked instead of packed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def compose(output_dir: Path, epochs: int, backend: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from lstmkit.runtime._config_dir import CONFIG_DIR

    GlobalHydra.instance().clear()
    overrides = [
        "experiment=seed_classifier",
        f"model/encoder={backend}",
        "model.encoder.hidden_size=128",
        f"trainer.max_epochs={epochs}",
        "trainer.min_epochs=1",
        "+trainer.enable_progress_bar=false",
        "+trainer.enable_model_summary=false",
        "~callbacks.rich_progress_bar",
        "~callbacks.model_summary",
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = hydra_compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir)
        del cfg["hydra"]
    return cfg


def lstmkit_fit(cfg) -> tuple[float, int]:
    """Seconds of ``trainer.fit`` and training samples seen, built as ``lstmkit-train`` does."""
    import lightning.pytorch as pl

    from lstmkit.runtime import runs
    from lstmkit.runtime.config_checks import instantiate_checked

    pl.seed_everything(cfg.seed, verbose=False)
    datamodule = instantiate_checked(cfg.data, "data")
    model = instantiate_checked(cfg.model, "model", **datamodule.model_kwargs())
    callbacks = runs.instantiate_group(cfg.get("callbacks"), "callbacks")
    loggers = runs.instantiate_group(cfg.get("logger"), "logger")
    trainer = runs.build_trainer(cfg, callbacks, loggers)
    start = time.perf_counter()
    with runs.expected_warnings_ignored():
        trainer.fit(model=model, datamodule=datamodule)
    seconds = time.perf_counter() - start
    return seconds, datamodule.num_train * trainer.current_epoch


def hand_loop(cfg) -> tuple[float, int]:
    """The same model, data and optimiser in a plain PyTorch loop."""
    import torch
    from hydra.utils import instantiate

    torch.manual_seed(cfg.seed)
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    model = instantiate(cfg.model, **datamodule.model_kwargs())  # the same nn.Modules
    train_metrics, val_metrics = model.train_metrics, model.val_metrics
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.model.optimizer.lr)
    train_loader = datamodule.train_dataloader()
    val_loader = datamodule.val_dataloader()
    start = time.perf_counter()
    for _ in range(cfg.trainer.max_epochs):
        model.train()
        for x, y, lengths in train_loader:
            logits = model(x, lengths)
            loss = torch.nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            with torch.no_grad():
                train_metrics.update(logits.detach().softmax(-1), y)
        train_metrics.compute()
        train_metrics.reset()
        model.eval()
        with torch.no_grad():
            for x, y, lengths in val_loader:
                logits = model(x, lengths)
                torch.nn.functional.cross_entropy(logits, y)
                val_metrics.update(logits.softmax(-1), y)
        val_metrics.compute()
        val_metrics.reset()
    seconds = time.perf_counter() - start
    return seconds, datamodule.num_train * cfg.trainer.max_epochs


def save_keras_data(cfg, path: Path) -> None:
    """The same padded training/validation data for ``benchmark_keras.py``."""
    import numpy as np
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data)
    datamodule.setup()
    arrays = {}
    for split, prefix in (("train", ""), ("val", "_val")):
        ds = datamodule.splits[split]
        arrays["x" + prefix] = ds.x.numpy()  # (N, T, C), zero after each length: Keras masks it
        arrays["y" + prefix] = ds.y.numpy()
    arrays["num_classes"] = np.array(datamodule.model_kwargs()["num_classes"])
    np.savez(path, **arrays)


def keras_fit(python: str, data: Path, epochs: int, backend: str) -> tuple[float, int]:
    import json
    import os
    import subprocess

    script = Path(__file__).with_name("benchmark_keras.py")
    env = {**os.environ, "KERAS_BACKEND": backend}
    out = subprocess.run(
        [python, str(script), str(data), "--epochs", str(epochs)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["seconds"], round(result["samples_per_s"] * result["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--backend", default="cudnn", choices=["cudnn", "custom"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--keras-python",
        help="python of a separate environment with keras (e.g. /tmp/kerasenv/bin/python)",
    )
    parser.add_argument("--keras-backend", default="torch", help="KERAS_BACKEND for that run")
    args = parser.parse_args()

    import logging

    import torch

    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lstmkit").setLevel(logging.WARNING)
    rates: dict[str, list[float]] = {"lstmkit fit": [], "hand loop": []}
    keras_name = f"keras {args.keras_backend}"
    if args.keras_python:
        rates[keras_name] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "waveform.npz"
        for r in range(args.rounds):
            cfg = compose(Path(tmp) / f"run{r}", args.epochs, args.backend)
            loops = [("lstmkit fit", lstmkit_fit), ("hand loop", hand_loop)]
            if args.keras_python:
                if not data.exists():
                    save_keras_data(cfg, data)
                loops.append(
                    (
                        keras_name,
                        lambda c: keras_fit(
                            args.keras_python, data, c.trainer.max_epochs, args.keras_backend
                        ),
                    )
                )
            for name, fn in loops:
                seconds, samples = fn(cfg)
                rates[name].append(samples / seconds)
            print(
                f"round {r + 1}/{args.rounds}: "
                + ", ".join(f"{k} {v[-1]:,.0f} samples/s" for k, v in rates.items()),
                flush=True,
            )
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"\nexperiment=seed_classifier, backend={args.backend}, threads={args.threads}, "
          f"{args.epochs} epochs x {args.rounds} interleaved rounds (medians)")  # fmt: skip
    print(f"{'loop':<14} {'samples/s':>12}")
    for name, value in med.items():
        print(f"{name:<14} {value:>12,.0f}")
    print(f"ratio lstmkit / hand loop: {med['lstmkit fit'] / med['hand loop']:.3f}")
    if args.keras_python:
        print(f"ratio lstmkit / {keras_name}: {med['lstmkit fit'] / med[keras_name]:.2f}")
    else:
        print("Keras 3: not measured (pass --keras-python of an environment with keras)")


if __name__ == "__main__":
    main()
