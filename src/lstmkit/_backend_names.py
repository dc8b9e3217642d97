"""The names ``lstmkit.nn.build_lstm`` takes for ``backend``, without importing torch: the commands
check a config's ``model.encoder.backend`` before anything heavy is imported. `lstmkit.nn.registry`
checks at import that its backends are exactly these."""

BACKEND_NAMES = ("auto", "custom", "cudnn")
