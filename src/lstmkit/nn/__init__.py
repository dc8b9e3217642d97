"""Recurrent cores: a gate-by-gate `CustomLSTM` and a cuDNN-backed `CudnnLSTM`, one interface.

Both take torch.nn.LSTM's arguments, return its outputs and share its parameter names, so a
``state_dict`` moves between them and ``torch.nn.LSTM`` with no converter.
"""

from .base import LSTMBase
from .cell import Gates, LayerWeights, LSTMCell, lstm_step
from .cudnn import CudnnLSTM
from .custom import CustomLSTM
from .gates import GateTrace, record_gates, to_custom
from .registry import BACKEND_NAMES, BACKENDS, CUSTOM_ONLY_OPTIONS, build_lstm

__all__ = [
    "BACKENDS",
    "BACKEND_NAMES",
    "CUSTOM_ONLY_OPTIONS",
    "CudnnLSTM",
    "CustomLSTM",
    "GateTrace",
    "Gates",
    "LSTMBase",
    "LSTMCell",
    "LayerWeights",
    "build_lstm",
    "lstm_step",
    "record_gates",
    "to_custom",
]
