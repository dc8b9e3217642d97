"""A bare ``--help`` of the Hydra commands, answered from the config files without Hydra.

Hydra's own help composes the whole config, then every option of every group (about 1 s of
deep copies for lstmkit's ~120 group options, on top of importing Hydra and OmegaConf). A bare
``lstmkit-train --help`` (``-h``, nothing else on the command line) prints the same sections
from the files themselves, with nothing imported but ``yaml``:

* the command's header: ``hydra.help.header`` of ``configs/<name>.yaml``;
* ``== Configuration groups ==``: every group and its options, as Hydra's ``$APP_CONFIG_GROUPS``;
* ``== Config ==``: the primary config's defaults list (``data=adding ...``) and its own
  settings, comments included, in place of the fully composed config, which
  ``<command> --cfg job`` prints;
* Hydra's footer (``--hydra-help``).

With overrides (``lstmkit-train data=sine --help``) the command goes on to Hydra's own help,
which shows the config those overrides compose.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from lstmkit.runtime._config_dir import CONFIG_DIR, config_groups, group_options

HELP_FLAGS = ("--help", "-h")
#: Top-level keys of a primary config that are not its settings.
_NOT_SETTINGS = ("defaults", "hydra")
_TOP_KEY = re.compile(r"^([A-Za-z_][\w.-]*)\s*:")
_FOOTER = "Powered by Hydra (https://hydra.cc)\nUse --hydra-help to view Hydra specific help"


def is_bare_help(argv: Sequence[str]) -> bool:
    """Whether the command line is ``--help`` or ``-h`` alone."""
    return len(argv) == 1 and argv[0] in HELP_FLAGS


def answer_help(argv: Sequence[str], config_name: str, header: str | None = None) -> bool:
    """Print :func:`help_text` and return True on a bare ``--help``; else return False.

    Args:
        argv: the command line after the program name.
        config_name: the primary config (``"train"`` for ``configs/train.yaml``).
        header: replaces the config's ``hydra.help.header`` (a command sharing another's config).
    """
    if not is_bare_help(argv):
        return False
    print(help_text(config_name, header=header))
    return True


def help_text(config_name: str, header: str | None = None, config_dir: str = CONFIG_DIR) -> str:
    """The help of the command whose primary config is ``<config_dir>/<config_name>.yaml``."""
    import yaml

    with open(os.path.join(config_dir, f"{config_name}.yaml"), encoding="utf-8") as f:
        text = f.read()
    data = yaml.safe_load(text) or {}
    help_cfg = (data.get("hydra") or {}).get("help") or {}
    app_name = str(help_cfg.get("app_name") or config_name)
    if header is None:
        header = help_cfg.get("header") or f"{app_name} is powered by Hydra.\n"
    header = header.replace("${hydra.help.app_name}", app_name)

    groups = [g for g in config_groups() if not (g == "hydra" or g.startswith("hydra/"))]
    group_lines = "".join(f"{g}: {', '.join(group_options(g))}\n" for g in groups)
    defaults = default_choices(data.get("defaults") or [])
    settings = own_settings(text, data)
    return (
        f"{header.rstrip(chr(10))}\n\n"
        "== Configuration groups ==\n"
        "Compose your configuration from those groups (group=option)\n\n"
        f"{group_lines}\n\n"
        "== Config ==\n"
        "Override anything in the config (foo.bar=value)\n\n"
        f"Defaults: {' '.join(defaults) if defaults else '(none)'}\n"
        f"Below, {config_name}.yaml's own settings. `{app_name} --cfg job` prints the whole\n"
        f"composed config (every group's settings); `{app_name} <overrides> --help`, Hydra's\n"
        "help with the config they compose.\n\n"
        f"{settings}\n\n"
        f"{_FOOTER}"
    )


def default_choices(defaults: Sequence[Any]) -> list[str]:
    """``group=option`` for each group a defaults list chooses (``_self_``, the ``hydra``
    groups and optional groups left at ``null`` left out), in its order."""
    chosen = []
    for entry in defaults:
        if not isinstance(entry, dict):
            continue
        for group, option in entry.items():
            group = str(group).split()[-1].lstrip("/")  # "override hydra/launcher"
            if option is None or group == "hydra" or group.startswith("hydra/"):
                continue
            if isinstance(option, list):
                option = "[" + ",".join(str(o) for o in option) + "]"
            chosen.append(f"{group}={option}")
    return chosen


def own_settings(text: str, data: dict[str, Any] | None = None) -> str:
    """The top-level settings of a config file's text, each with the comment lines right
    above it, without its ``defaults`` list and ``hydra`` block.

    A comment separated from the next key by a blank line (the file's introduction) is left
    out. Should the lines picked not read back as the same settings (an unusual layout), the
    settings are written out by ``yaml`` instead, without comments.
    """
    import yaml

    out: list[str] = []
    pending: list[str] = []  # comment lines right above the next key
    keep = False
    for line in text.splitlines():
        if not line.strip():
            pending = []
            continue
        if line.startswith("#"):
            pending.append(line)
            continue
        key = _TOP_KEY.match(line)
        if key is not None:
            keep = key.group(1) not in _NOT_SETTINGS
            if keep:
                out.extend(pending)
            pending = []
        if keep:
            out.append(line)
    picked = "\n".join(out)
    if data is None:
        data = yaml.safe_load(text) or {}
    expected = {k: v for k, v in data.items() if k not in _NOT_SETTINGS}
    try:
        if (yaml.safe_load(picked) or {}) == expected:
            return picked
    except yaml.YAMLError:
        pass
    return yaml.safe_dump(expected, sort_keys=False).rstrip("\n")
