"""Research tools on trained tasks: gate inspection, robustness evaluation, ONNX export.

Each submodule is imported on its own (``lstmkit.research.gates``, ``.robustness``,
``.onnx_export``); the command-line shells are ``lstmkit.inspect_gates``, ``lstmkit.robustness``
and ``lstmkit.export``.
"""
