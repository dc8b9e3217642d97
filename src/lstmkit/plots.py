"""All of lstmkit's plotting: learning curves, predictions vs truth, confusion matrices.

Matplotlib's object API with the Agg canvas (no display, no global pyplot state), imported only
when a plot is drawn.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import torch
from torch import Tensor

from lstmkit._logging import get_logger

log = get_logger(__name__)


def _figure(width: float = 6.0, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def read_metrics_csv(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """``metrics.csv`` from Lightning's CSVLogger -> ``{metric: [(epoch, value), ...]}``."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            epoch = row.get("epoch")
            if not epoch:
                continue
            for key, value in row.items():
                if key in ("epoch", "step") or not value:
                    continue
                series[key].append((int(float(epoch)), float(value)))
    return dict(series)


def plot_learning_curves(metrics_csv: str | Path, out: str | Path) -> Path | None:
    """Per-epoch train/val loss and the other validation metrics. None if nothing to plot."""
    series = read_metrics_csv(metrics_csv)
    losses = {k: v for k, v in series.items() if k in ("train/loss_epoch", "val/loss")}
    others = sorted(k for k in series if k.startswith("val/") and k != "val/loss")
    if not losses:
        return None
    fig = _figure(10.0 if others else 6.0, 4.0)
    axes = fig.subplots(1, 2 if others else 1, squeeze=False)[0]
    for key, points in sorted(losses.items()):
        epochs, values = zip(*points, strict=True)
        axes[0].plot(epochs, values, marker="o", label=key.replace("_epoch", ""))
    axes[0].set(xlabel="epoch", ylabel="loss", title="Loss")
    if all(v > 0 for points in losses.values() for _, v in points):
        axes[0].set_yscale("log")
    axes[0].legend()
    if others:
        for key in others:
            epochs, values = zip(*series[key], strict=True)
            axes[1].plot(epochs, values, marker=".", label=key)
        axes[1].set(xlabel="epoch", title="Validation metrics")
        axes[1].legend()
    return _save(fig, out)


def plot_predictions(pred: Tensor, target: Tensor, out: str | Path, max_points: int = 2000) -> Path:
    """Predictions against targets (original units), one point per predicted value; with a
    horizon ``(N, H, O)``, also a few forecasts drawn against the truth."""
    p, t = pred.detach().float().cpu(), target.detach().float().cpu()
    forecasts = p.dim() == 3 and p.shape[1] > 1
    fig = _figure(10.0 if forecasts else 5.0, 4.5)
    axes = fig.subplots(1, 2 if forecasts else 1, squeeze=False)[0]
    flat_p, flat_t = p.reshape(-1)[:max_points], t.reshape(-1)[:max_points]
    axes[0].scatter(flat_t, flat_p, s=6, alpha=0.5)
    low, high = float(min(flat_t.min(), flat_p.min())), float(max(flat_t.max(), flat_p.max()))
    axes[0].plot([low, high], [low, high], color="black", lw=1, label="y = x")
    axes[0].set(xlabel="truth", ylabel="prediction", title="Test predictions vs truth")
    axes[0].legend()
    if forecasts:
        steps = torch.arange(1, p.shape[1] + 1)
        for i in range(min(3, len(p))):
            (line,) = axes[1].plot(steps, t[i, :, 0], lw=2, label=f"truth {i}")
            axes[1].plot(steps, p[i, :, 0], ls="--", color=line.get_color(), label=f"forecast {i}")
        axes[1].set(xlabel="steps ahead", title="Forecasts (channel 0)")
        axes[1].legend(fontsize="small")
    return _save(fig, out)


def plot_confusion_matrix(
    pred: Tensor,
    target: Tensor,
    num_classes: int,
    out: str | Path,
    class_names: list[str] | None = None,
) -> Path:
    """Row-normalised confusion matrix (rows: truth) with counts in the cells."""
    index = target.long().cpu() * num_classes + pred.long().cpu()
    counts = torch.bincount(index, minlength=num_classes**2).view(num_classes, num_classes)
    rates = counts.double() / counts.sum(1, keepdim=True).clamp_min(1)
    names = class_names or [str(i) for i in range(num_classes)]
    size = max(4.0, 0.5 * num_classes + 2)
    fig = _figure(size + 1, size)
    ax = fig.subplots()
    image = ax.imshow(rates.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    if num_classes <= 20:
        for i in range(num_classes):
            for j in range(num_classes):
                color = "white" if rates[i, j] > 0.5 else "black"
                ax.text(j, i, int(counts[i, j]), ha="center", va="center", color=color, fontsize=8)
    ax.set_xticks(range(num_classes), names, rotation=45 if num_classes > 6 else 0)
    ax.set_yticks(range(num_classes), names)
    accuracy = counts.diag().sum().item() / max(1, counts.sum().item())
    ax.set(xlabel="predicted", ylabel="true", title=f"Confusion matrix (accuracy {accuracy:.3f})")
    return _save(fig, out)


def _save(fig, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    log.info("Saved %s", out)
    return out
