"""Small files for the data tests, written into tmp_path, and a shrunk-run override list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

#: Overrides that make a real-data run tiny (CPU, no progress bar or summary).
SMALL_RUN = (
    "trainer=cpu",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
    "~callbacks.rich_progress_bar",
    "~callbacks.model_summary",
    "~callbacks.early_stopping",
    "model.encoder.hidden_size=16",
)


def write_series(path: Path, n: int = 200, seed: int = 0) -> pd.DataFrame:
    """A noisy sine with a covariate, rows shuffled so that ``time`` must sort them."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    frame = pd.DataFrame(
        {
            "time": t,
            "y": np.sin(t / 5.0) + 0.05 * rng.standard_normal(n),
            "x1": np.cos(t / 5.0),
        }
    )
    frame.sample(frac=1.0, random_state=seed).to_csv(path, index=False)
    return frame


def make_sequences(n: int = 120, channels: int = 2, seed: int = 0):
    """Variable-length sequences whose class is the sign of the first channel's mean."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 16, n)
    y = rng.integers(0, 2, n)
    seqs = []
    for t, c in zip(lengths, y, strict=True):
        seq = (0.5 * rng.standard_normal((t, channels))).astype(np.float32)
        seq[:, 0] += 1.0 if c == 1 else -1.0
        seqs.append(seq)
    return seqs, y, lengths


def write_npz_objects(path: Path, seqs, y) -> None:
    x = np.empty(len(seqs), dtype=object)
    x[:] = seqs
    np.savez(path, x=x, y=y)


def write_ts(path: Path, seqs, labels, problem: str = "tiny") -> None:
    """A UEA ``.ts`` file written by hand (multivariate, unequal lengths)."""
    classes = " ".join(sorted({str(v) for v in labels}))
    equal = "true" if len({len(s) for s in seqs}) == 1 else "false"
    lines = [
        f"@problemName {problem}",
        "@timeStamps false",
        "@missing false",
        f"@univariate {'true' if seqs[0].shape[1] == 1 else 'false'}",
        f"@dimensions {seqs[0].shape[1]}",
        f"@equalLength {equal}",
        f"@classLabel true {classes}",
        "@data",
    ]
    for seq, label in zip(seqs, labels, strict=True):
        dims = [",".join(f"{v:.6g}" for v in seq[:, c]) for c in range(seq.shape[1])]
        lines.append(":".join(dims) + f":{label}")
    path.write_text("\n".join(lines) + "\n")
