"""Research tools on trained tasks: gate inspection, robustness evaluation, ONNX export.

Each submodule is imported on its own (``lstmkit.research.gates``, ``.robustness``,
``.onnx_export``); the command-line shells are ``lstmkit.cli.inspect``, ``lstmkit.cli.robustness``
and ``lstmkit.cli.export``.
"""
