"""Lightning tasks: an ``lstmkit.nn`` encoder with pooling, a head, a loss and metrics.

This layer imports ``lstmkit.nn`` and never ``lstmkit.data``: sizes known from the data
(``input_size``, ``num_classes``, target scaling) arrive as constructor arguments.
"""

from lstmkit.tasks.autoregressive import AutoregressiveForecaster
from lstmkit.tasks.base import SequenceTask
from lstmkit.tasks.classification import SequenceClassifier
from lstmkit.tasks.heads import POOLINGS, MLPHead, pool
from lstmkit.tasks.regression import LOSSES, SequenceRegressor
from lstmkit.tasks.seq2seq import Seq2SeqLSTM

__all__ = [
    "LOSSES",
    "POOLINGS",
    "AutoregressiveForecaster",
    "MLPHead",
    "Seq2SeqLSTM",
    "SequenceClassifier",
    "SequenceRegressor",
    "SequenceTask",
    "pool",
]
