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


def plot_predictions(
    pred: Tensor,
    target: Tensor,
    out: str | Path,
    max_points: int = 2000,
    consecutive: bool = False,
    interval: tuple[Tensor, Tensor, str] | None = None,
) -> Path:
    """Predictions against targets (original units), one point per predicted value; with a
    horizon ``(N, H, O)``, also a few forecasts drawn against the truth.

    ``interval=(lower, upper, label)``, each shaped like ``pred``, draws a prediction interval
    (a probabilistic forecast's lowest and highest quantiles): a band around each drawn
    forecast, or error bars on the scatter when there is no horizon.

    ``consecutive=True`` says window ``i + 1`` starts one step after window ``i`` (a time
    series at stride 1): a third panel then draws the truth along the split and, at each step,
    the forecast made ``H`` steps before it (every window's last horizon step: what
    ``mape_last`` scores).
    """
    p, t = pred.detach().float().cpu(), target.detach().float().cpu()
    forecasts = p.dim() == 3 and p.shape[1] > 1
    along = forecasts and consecutive
    panels = 1 + forecasts + along
    fig = _figure(5.0 * panels, 4.5)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    flat_p, flat_t = p.reshape(-1)[:max_points], t.reshape(-1)[:max_points]
    axes[0].scatter(flat_t, flat_p, s=6, alpha=0.5)
    if interval is not None and not forecasts:
        low_q = interval[0].detach().float().cpu().reshape(-1)[:max_points]
        high_q = interval[1].detach().float().cpu().reshape(-1)[:max_points]
        axes[0].errorbar(flat_t, flat_p, yerr=torch.stack([flat_p - low_q, high_q - flat_p]),
                         fmt="none", alpha=0.3, label=interval[2])  # fmt: skip
    low, high = float(min(flat_t.min(), flat_p.min())), float(max(flat_t.max(), flat_p.max()))
    axes[0].plot([low, high], [low, high], color="black", lw=1, label="y = x")
    axes[0].set(xlabel="truth", ylabel="prediction", title="Test predictions vs truth")
    axes[0].legend()
    if forecasts:
        steps = torch.arange(1, p.shape[1] + 1)
        for i in range(min(3, len(p))):
            (line,) = axes[1].plot(steps, t[i, :, 0], lw=2, label=f"truth {i}")
            axes[1].plot(steps, p[i, :, 0], ls="--", color=line.get_color(), label=f"forecast {i}")
            if interval is not None:
                axes[1].fill_between(steps, interval[0][i, :, 0].detach().float().cpu(),
                                     interval[1][i, :, 0].detach().float().cpu(),
                                     color=line.get_color(), alpha=0.2,
                                     label=interval[2] if i == 0 else None)  # fmt: skip
        axes[1].set(xlabel="steps ahead", title="Forecasts (channel 0)")
        axes[1].legend(fontsize="small")
    if along:
        horizon = p.shape[1]
        truth = torch.cat([t[:, 0, 0], t[-1, 1:, 0]])  # every target step of the split
        axes[2].plot(torch.arange(len(truth)), truth, color="black", lw=2, label="truth")
        axes[2].plot(torch.arange(horizon - 1, len(truth)), p[:, -1, 0], ls="--", marker=".",
                     label=f"forecast {horizon} steps before")  # fmt: skip
        axes[2].set(xlabel="step of the test split", title="Forecasts along the split (channel 0)")
        axes[2].legend(fontsize="small")
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


# ----------------------------------------------------------------- research tools (issue 5)
#: Gate names of a ``GateTrace`` with their plot labels and colour ranges.
GATE_PANELS = (
    ("input_gate", "input gate i", 0.0, 1.0),
    ("forget_gate", "forget gate f", 0.0, 1.0),
    ("cell_gate", "cell candidate g", -1.0, 1.0),
    ("output_gate", "output gate o", 0.0, 1.0),
    ("cell", "cell state c", None, None),
    ("hidden", "hidden state h", -1.0, 1.0),
)


def plot_sequence_accuracy(pred: Tensor, target: Tensor, out: str | Path) -> Path:
    """Sequence-to-sequence results by target length: exact-sequence match and per-token
    accuracy. ``pred``/``target`` ``(N, L)`` token ids, ``-100`` past each target's end."""
    pred, target = pred.cpu(), target.cpu()
    steps = min(pred.shape[1], target.shape[1])
    pred, target = pred[:, :steps], target[:, :steps]
    valid = target != -100
    lengths = valid.sum(1)
    exact = ((pred == target) | ~valid).all(1).double()
    tokens = ((pred == target) & valid).sum(1).double() / lengths.clamp_min(1)
    keys = sorted(set(lengths.tolist()))
    fig = _figure(6.0, 4.0)
    ax = fig.subplots()
    xs = torch.arange(len(keys)).double()
    ex = [float(exact[lengths == k].mean()) for k in keys]
    tk = [float(tokens[lengths == k].mean()) for k in keys]
    ax.bar(xs - 0.2, ex, width=0.4, label="exact sequence match")
    ax.bar(xs + 0.2, tk, width=0.4, label="token accuracy")
    counts = [int((lengths == k).sum()) for k in keys]
    ax.set_xticks(xs.tolist(), [f"{k}\n(n={c})" for k, c in zip(keys, counts, strict=True)])
    ax.set(
        xlabel="target length (tokens, incl. <eos>)",
        ylabel="fraction correct",
        ylim=(0, 1.25),
        title=f"Greedy decoding on the test split (exact match {float(exact.mean()):.3f})",
    )
    ax.legend(loc="upper left", ncol=2)
    return _save(fig, out)


def plot_gate_heatmaps(
    trace: dict[str, Tensor], out: str | Path, title: str = "", length: int | None = None
) -> Path:
    """Heatmaps (unit × time step) of one sequence's gates, cell and hidden state.

    Args:
        trace: ``GateTrace.as_dict()`` of one layer and sequence: each ``(T, H)``.
        length: valid steps to draw (default all).
    """
    fig = _figure(12.0, 6.5)
    axes = fig.subplots(2, 3)
    for ax, (name, label, vmin, vmax) in zip(axes.flat, GATE_PANELS, strict=True):
        values = trace[name].detach().float().cpu()[:length]  # (T, H)
        cmap = "viridis" if vmin == 0.0 else "RdBu_r"
        if vmin is None:
            bound = float(values.abs().max().clamp_min(1e-6))
            vmin, vmax = -bound, bound
        image = ax.imshow(
            values.T.numpy(), aspect="auto", origin="lower", cmap=cmap, vmin=vmin, vmax=vmax
        )
        fig.colorbar(image, ax=ax, label="activation (unitless)")
        ax.set(xlabel="time step", ylabel="unit", title=label)
    if title:
        fig.suptitle(title)
    return _save(fig, out)


def plot_gate_summary(
    forget_mean: Tensor,
    saturation: dict[str, Tensor],
    out: str | Path,
    labels: list[str] | None = None,
    threshold: float = 0.1,
) -> Path:
    """Forget-gate mean over units per time step (one line per sequence) and the fraction of
    saturated gate values (below ``threshold`` or above ``1 - threshold``) per time step.

    Args:
        forget_mean: ``(S, T)`` mean forget gate of S sequences (NaN past a sequence's end).
        saturation: gate name -> ``(T,)`` fraction saturated over sequences and units.
    """
    fig = _figure(11.0, 4.0)
    ax_f, ax_s = fig.subplots(1, 2)
    steps = torch.arange(forget_mean.shape[1])
    for k, row in enumerate(forget_mean.float().cpu()):
        ax_f.plot(steps, row, label=labels[k] if labels else f"sequence {k}")
    ax_f.set(
        xlabel="time step", ylabel="mean forget gate f", ylim=(0, 1), title="Forget gate over time"
    )
    ax_f.legend(fontsize="small")
    for name, values in saturation.items():
        ax_s.plot(torch.arange(len(values)), values.float().cpu(), label=name.replace("_", " "))
    ax_s.set(
        xlabel="time step",
        ylabel="fraction saturated",
        ylim=(0, 1),
        title=f"Saturated gates (< {threshold} or > {1 - threshold})",
    )
    ax_s.legend(fontsize="small")
    return _save(fig, out)


def plot_robustness(
    rows: list[dict[str, float | str]], metrics: list[str], out: str | Path
) -> Path:
    """Test metrics against perturbation strength, one panel per perturbation.

    Args:
        rows: ``{"perturbation": name, "level": x, "<metric>": value, ...}`` (the CSV's rows).
        metrics: metric columns to draw (e.g. ``["test/loss", "test/acc"]``).
    """
    kinds = list(dict.fromkeys(str(r["perturbation"]) for r in rows))
    xlabels = {
        "noise": "Gaussian noise std (input units, standardised)",
        "missing": "fraction of missing steps",
        "truncate": "fraction of each sequence kept",
    }
    fig = _figure(4.5 * len(kinds), 4.0)
    axes = fig.subplots(1, len(kinds), squeeze=False)[0]
    for ax, kind in zip(axes, kinds, strict=True):
        part = [r for r in rows if r["perturbation"] == kind]
        levels = [float(r["level"]) for r in part]
        for metric in metrics:
            ax.plot(levels, [float(r[metric]) for r in part], marker="o", label=metric)
        if kind == "truncate":
            ax.invert_xaxis()  # left: the clean data, as in the other panels
        ax.set(xlabel=xlabels.get(kind, kind), ylabel="metric value", title=f"Degradation: {kind}")
        ax.legend(fontsize="small")
    return _save(fig, out)
