"""Recurrent cores: a gate-by-gate `CustomLSTM`, a cuDNN-backed `CudnnLSTM`, and `AutoLSTM`,
which runs each call on the faster of the two; one interface.

All take torch.nn.LSTM's arguments, return its outputs and share its parameter names, so a
``state_dict`` moves between them and ``torch.nn.LSTM`` with no converter. Importing this package
registers the custom core's operators (``torch.ops.lstmkit``) and allowlists the cores for
``torch.load(weights_only=True)``. The fast paths' switches are in `lstmkit.nn.settings`.
"""

from .auto import AutoLSTM
from .base import LSTMBase, LSTMInputError
from .cell import Gates, LayerWeights, LSTMCell, lstm_step
from .cudnn import CudnnLSTM
from .custom import CustomLSTM
from .frontend import FRONTEND_KEYS, ConvFrontEnd, build_frontend
from .gates import GateTrace, record_gates, to_custom
from .registry import BACKEND_NAMES, BACKENDS, CUSTOM_ONLY_OPTIONS, build_lstm
from .settings import flags, settings

__all__ = [
    "BACKENDS",
    "BACKEND_NAMES",
    "CUSTOM_ONLY_OPTIONS",
    "FRONTEND_KEYS",
    "AutoLSTM",
    "ConvFrontEnd",
    "CudnnLSTM",
    "CustomLSTM",
    "GateTrace",
    "Gates",
    "LSTMBase",
    "LSTMCell",
    "LSTMInputError",
    "LayerWeights",
    "build_frontend",
    "build_lstm",
    "flags",
    "lstm_step",
    "record_gates",
    "settings",
    "to_custom",
]
