"""The docs site builds with ``--strict``, and every Python and shell block of the docs and the
README runs.

- Python blocks run as written, each in a fresh namespace, in a temporary folder.
- Shell blocks are lstmkit command lines. Each runs through the command's own ``main()`` with
  everything up to the point where Hydra would start: the argument checks, the composition of
  the config and every override checked against the constructors (``lstmkit.runtime.override_checks``).
  A command the docs show therefore exists, takes these overrides and passes its checks; only
  the training itself is left out. A shell line that is not an lstmkit command (``make``,
  ``pip``, a benchmark script) is an error unless the block is marked.
- A block that must not run is preceded by ``<!-- no-run: reason -->``; the test skips it with
  that reason. ``<!-- slow: reason -->`` runs it under ``@pytest.mark.slow``.
"""

from __future__ import annotations

import importlib
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ ]*$", re.M | re.S
)
MARK = re.compile(r"<!--\s*(?P<kind>no-run|slow):\s*(?P<reason>.+?)\s*-->")

# command name -> module whose main() runs it
COMMANDS = {
    "lstmkit-train": "lstmkit.cli.train",
    "lstmkit-eval": "lstmkit.cli.evaluate",
    "lstmkit-predict": "lstmkit.cli.predict",
    "lstmkit-inspect": "lstmkit.cli.inspect",
    "lstmkit-robustness": "lstmkit.cli.robustness",
    "lstmkit-export": "lstmkit.cli.export",
    "lstmkit-ensemble": "lstmkit.cli.ensemble",
}
MODULES = {
    "lstmkit.cli.train",
    "lstmkit.cli.evaluate",
    "lstmkit.cli.inspect",
    "lstmkit.cli.robustness",
    "lstmkit.cli.export",
    "lstmkit.cli.ensemble",
}


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    body: str
    mark: str | None  # "no-run" or "slow"
    reason: str | None

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of ``page``, with the marker on the line before each."""
    text = page.read_text()
    found = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip().rsplit("\n", 1)[-1]
        mark = MARK.search(before)
        found.append(
            Block(
                page,
                line,
                m["lang"],
                textwrap.dedent(m["body"]),
                mark["kind"] if mark else None,
                mark["reason"] if mark else None,
            )
        )
    return found


ALL = [b for page in PAGES for b in blocks(page)]


def _params(lang: str, fast_every: int = 1) -> list:
    """The blocks of ``lang`` as pytest params; with ``fast_every=k`` only every k-th block runs
    in ``make check`` (the rest are marked slow; ``make test`` runs them all)."""
    params = []
    for k, b in enumerate(b for b in ALL if b.lang == lang):
        marks = []
        if b.mark == "no-run":
            marks.append(pytest.mark.skip(reason=f"no-run: {b.reason}"))
        elif b.mark == "slow" or k % fast_every:
            marks.append(pytest.mark.slow)
        params.append(pytest.param(b, id=b.id, marks=marks))
    return params


def test_the_blocks_are_found():
    """The parser sees the blocks (a broken fence regex would make every block test vanish)."""
    langs = [b.lang for b in ALL]
    assert langs.count("python") >= 8 and langs.count("bash") >= 15, langs
    readme = [b for b in ALL if b.page.name == "README.md"]
    assert {b.lang for b in readme} >= {"python", "bash"}
    assert all(b.reason for b in ALL if b.mark), "a marker without a reason"


@pytest.mark.parametrize("block", _params("python"))
def test_python_block_runs(block: Block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = compile(block.body, block.id, "exec")
    exec(code, {"__name__": "docs_example"})


def command_lines(body: str) -> list[list[str]]:
    """The command lines of a shell block, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", body)
    return [argv for line in joined.splitlines() if (argv := shlex.split(line, comments=True))]


def dry_run(argv: list[str], monkeypatch, capsys) -> None:
    """Run an lstmkit command line up to the point where Hydra would start; fail on its error."""
    if argv[:2] == ["python", "-m"] and argv[2] in MODULES:
        module, args, name = argv[2], argv[3:], f"python -m {argv[2]}"
    elif argv[0] in COMMANDS:
        module, args, name = COMMANDS[argv[0]], argv[1:], argv[0]
    else:
        pytest.fail(
            f"{shlex.join(argv)!r} is not an lstmkit command: mark its block with "
            "<!-- no-run: reason --> or move the line into a block of its own"
        )
    mod = importlib.import_module(module)
    if module == "lstmkit.cli.predict":
        # its checks are its argument parser; running it would read the checkpoint
        if not args or args[0] in ("-h", "--help"):
            return
        mod.parse_args(args)
        return
    started = []
    monkeypatch.setattr(mod, "_hydra_main", lambda: started.append(True))
    monkeypatch.setattr(sys, "argv", [name, *args])
    try:
        mod.main()
    except SystemExit as exc:
        err = capsys.readouterr().err.strip().splitlines()
        pytest.fail(f"{shlex.join(argv)} -> exit {exc.code}: {err[-1] if err else ''}")
    if args in (["--help"], ["-h"]):  # answered from the config files, before Hydra
        assert "== Configuration groups ==" in capsys.readouterr().out, shlex.join(argv)
        return
    assert started, f"{shlex.join(argv)} did not reach Hydra"


# about 1 s a block (each command composes and checks its config): a sample in make check
@pytest.mark.parametrize("block", _params("bash", fast_every=4))
def test_shell_block_commands_pass_their_checks(block: Block, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    commands = command_lines(block.body)
    assert commands, f"{block.id}: an empty shell block"
    for argv in commands:
        dry_run(argv, monkeypatch, capsys)


def test_dry_run_catches_a_bad_override(tmp_path, monkeypatch, capsys):
    """The shell-block check can fail: a typo in a documented command is reported."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(pytest.fail.Exception, match="trainr"):
        dry_run(["lstmkit-train", "trainr.max_epochs=1"], monkeypatch, capsys)
    with pytest.raises(pytest.fail.Exception, match="not an lstmkit command"):
        dry_run(["pip", "install", "lstmkit"], monkeypatch, capsys)


MKDOCS = shutil.which("mkdocs", path=str(Path(sys.executable).parent))


@pytest.mark.slow
@pytest.mark.skipif(MKDOCS is None, reason="mkdocs is not installed (the docs extra)")
def test_site_builds_strict(tmp_path):
    """``mkdocs build --strict``: no broken link, anchor, page or API reference."""
    result = subprocess.run(
        [MKDOCS, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**_env(), "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "nn" / "index.html").read_text()
    assert 'id="lstmkit.nn.CustomLSTM"' in api  # the API reference was generated
    speed = (tmp_path / "site" / "speed" / "index.html").read_text()
    assert "Generated from <code>benchmarks/nn_cpu.json</code>" in speed
    assert "<!-- benchmark:" not in speed


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return env


def test_benchmark_tables_come_from_the_json():
    """The speed tables are computed from benchmarks/*.json, not pasted."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from mkdocs_hooks import benchmark_table, on_page_markdown
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    table = benchmark_table("nn_cpu.json", "fwd+bwd")
    import json

    data = json.loads((ROOT / "benchmarks" / "nn_cpu.json").read_text())
    custom = next(r for r in data["results"] if r["candidate"] == "custom" and r["shape"][1] == 100)
    assert f"{custom['ratio_to_torch']['fwd+bwd']:.2f}×" in table
    page = on_page_markdown("a\n<!-- benchmark: nn_cpu_lengths.json fwd -->\nb")
    assert "<!--" not in page and "(32, 100, 1, 128, 1)" in page
    with pytest.raises(FileNotFoundError):
        benchmark_table("missing.json", "fwd")


def _slug(heading: str) -> str:
    """The anchor mkdocs (Python-Markdown's toc) gives a heading."""
    text = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"[-\s]+", "-", text).strip("-")


def test_readme_links_resolve():
    """The README is not part of the site, so its links into docs/ are checked here."""
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert len(local) >= 10, local
    broken = []
    for link in local:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        if not target.exists():
            broken.append(link)
        elif anchor:
            headings = re.findall(r"^#+ (.+)$", target.read_text(), flags=re.M)
            if anchor not in {_slug(h) for h in headings}:
                broken.append(link)
    assert not broken, broken
