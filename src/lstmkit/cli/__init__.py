"""The command-line entry points, one thin module per command, each a console script.

``lstmkit-train`` (`lstmkit.cli.train`), ``lstmkit-eval`` (`.evaluate`), ``lstmkit-predict``
(`.predict`), ``lstmkit-inspect`` (`.inspect`), ``lstmkit-robustness`` (`.robustness`),
``lstmkit-export`` (`.export`) and ``lstmkit-ensemble`` (`.ensemble`); ``python -m
lstmkit.cli.<module>`` runs the same. The commands are the top layer: they may import every
other part of the package, and nothing in it imports them. This package imports nothing, so
``--help`` stays fast.
"""
