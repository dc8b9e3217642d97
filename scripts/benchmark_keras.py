"""Keras 3 ``fit`` on the explainer's classifier, for ``benchmark_loop.py --keras-python``.

Runs in a separate environment that has ``keras`` (and the backend's framework); reads the
padded waveform data that ``benchmark_loop.py`` saved and prints one JSON line with samples/s.
The model is the explainer's: Masking -> LSTM(128) -> Dense(num_classes, softmax), Adam,
sparse categorical cross-entropy, accuracy, batch 32, with validation data.

    KERAS_BACKEND=torch python scripts/benchmark_keras.py data.npz --epochs 1
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()

    import keras
    import numpy as np

    data = np.load(args.data)
    x, y, xv, yv = data["x"], data["y"], data["x_val"], data["y_val"]
    num_classes = int(data["num_classes"])
    model = keras.Sequential(
        [
            keras.Input(shape=x.shape[1:]),
            keras.layers.Masking(mask_value=0.0),
            keras.layers.LSTM(128),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x, y, batch_size=args.batch, epochs=args.epochs, validation_data=(xv, yv), verbose=0)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "backend": keras.backend.backend(),
                "seconds": seconds,
                "samples_per_s": len(x) * args.epochs / seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
