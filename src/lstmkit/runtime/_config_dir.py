"""Where the Hydra configs are: chosen once at import time, with no heavy imports.

An installed wheel carries them as ``lstmkit/configs`` (hatch ``force-include``); a source
checkout or an editable install has them in the repository's top-level ``configs/``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

_PACKAGE_CONFIGS = Path(__file__).resolve().parents[1] / "configs"
_REPO_CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def find_config_dir() -> str:
    """The package's ``lstmkit/configs`` if present, else the repository's ``configs/``."""
    for candidate in (_PACKAGE_CONFIGS, _REPO_CONFIGS):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(
        f"lstmkit's configs are missing: looked in {_PACKAGE_CONFIGS} and {_REPO_CONFIGS}"
    )


CONFIG_DIR = find_config_dir()

# configs/hydra/launcher/*.yaml share their names with the launcher plugins' schemas, against
# which Hydra 1.3 validates them (the intended check) with a deprecation notice on every run
warnings.filterwarnings(
    "ignore", message=r"\s*'hydra/launcher/.*' is validated against ConfigStore schema"
)


def group_options(group: str, extra_dirs: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Names of the configs of a group (``"data"``, ``"model/encoder"``) in the config dirs."""
    names: set[str] = set()
    for root in (CONFIG_DIR, *extra_dirs):
        folder = os.path.join(root, group)
        if os.path.isdir(folder):
            names.update(f[: -len(".yaml")] for f in os.listdir(folder) if f.endswith(".yaml"))
    return sorted(names)


def config_groups() -> list[str]:
    """Every config group under :data:`CONFIG_DIR`, nested ones as ``"model/encoder"``."""
    groups = []
    for dirpath, _, files in os.walk(CONFIG_DIR):
        rel = os.path.relpath(dirpath, CONFIG_DIR)
        if rel != "." and any(f.endswith(".yaml") for f in files):
            groups.append(rel.replace(os.sep, "/"))
    return sorted(groups)
