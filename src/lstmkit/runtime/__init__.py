"""Run infrastructure the commands share: what they run (`training`, `evaluation`,
`ensembles`), config and override checks (`config_checks`,
`override_checks`, `_config_dir`), run folders and their guards (`runs`, `guards`), checkpoints
read safely (`checkpoints`), callbacks (`callbacks`), determinism and DDP set-up
(`determinism`, `distributed`) and the figures (`plots`).

It sits below the commands (`lstmkit.cli`), which it never imports, and beside the research
tools, which build on some of it. Each module is imported on its own; this package imports
nothing, so the commands' ``--help`` and their override checks stay torch-free.
"""
