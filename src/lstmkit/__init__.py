"""lstmkit: LSTMs for sequence modelling.

Layers, lowest first: ``lstmkit.nn`` (recurrent cores) -> ``lstmkit.tasks`` (Lightning modules)
-> ``lstmkit.data`` (datamodules) -> the command-line entry points.
"""

__version__ = "0.1.0"
