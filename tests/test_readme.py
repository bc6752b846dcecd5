"""The README is a tested front door.

Each ```python block is pasted, line by line, into the interactive interpreter
of the environment `make` builds (this one), in a fresh process started in an
empty directory, without numba-cuda's simulator (the README promises a
machine without a GPU), and must run without an error in under a minute.
Each `gradkern` command line of its ```bash blocks must exit 0.  The README
stays short and self-contained: no issue numbers, no session history, no
paths outside the repository, and every link resolves.
"""
import code
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TEXT = README.read_text(encoding="utf-8")
#: "at most about 150 lines"; the generated regions' markers take ten
MAX_LINES = 160
#: what a README block may take, cold kernel cache included (warm: a few seconds)
BLOCK_SECONDS = 60


def fenced(text, lang):
    """The bodies of the ```lang blocks of ``text``."""
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.S | re.M)


def _env():
    env = os.environ.copy()
    # tests/conftest.py turns the simulator on for the suite; a user's shell has it off
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    return env


def paste(source):
    """Feed ``source`` to an interactive console line by line, as a paste into
    ``python`` does (a blank line inside an indented block would end it early;
    a statement right after an indented block is a SyntaxError).  Exit status
    1 if any line raised."""
    class Console(code.InteractiveConsole):
        failed = False

        def showtraceback(self):
            self.failed = True
            super().showtraceback()

        def showsyntaxerror(self, *args, **kwargs):
            self.failed = True
            super().showsyntaxerror(*args, **kwargs)

    sys.path[0] = ""  # the interpreter's own: the current directory, not tests/
    console = Console(filename="<stdin>")
    more = False
    for line in source.splitlines():
        more = console.push(line)
    if more:
        console.push("")  # the Enter that ends a final indented block
    return 1 if console.failed else 0


PYTHON_BLOCKS = fenced(TEXT, "python")


def test_readme_has_python_blocks():
    assert len(PYTHON_BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_block_runs_when_pasted(index, tmp_path):
    block = PYTHON_BLOCKS[index]
    out = subprocess.run([sys.executable, __file__], input=block, cwd=tmp_path, env=_env(),
                         capture_output=True, text=True, timeout=BLOCK_SECONDS)
    assert out.returncode == 0, f"README python block {index + 1} failed:\n{block}\n{out.stderr}"
    assert "Traceback" not in out.stderr, out.stderr
    assert list(tmp_path.iterdir()) == [], "a README block wrote into the current directory"


def _gradkern_lines():
    lines = []
    for block in fenced(TEXT, "bash"):
        for line in block.splitlines():
            if line.startswith("gradkern "):
                lines.append(shlex.split(line, comments=True))
    return lines


def test_gradkern_command_lines_run(tmp_path):
    """The README's `gradkern` command lines, in order, in one directory."""
    lines = _gradkern_lines()
    assert lines, "the README shows no gradkern command"
    for words in lines:
        out = subprocess.run([sys.executable, "-m", "gradkern", *words[1:]], cwd=tmp_path,
                             env=_env(), capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, (shlex.join(words), out.stderr)


def test_readme_is_short():
    n = len(TEXT.splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines; depth belongs in docs/"


@pytest.mark.parametrize("pattern", [
    r"issue\s*#?\d", r"#\d+\b", r"\bsessions?\b", r"\.\./", r"notebook",
    r"pip install \"?gradkern",  # not on PyPI: install from the clone
])
def test_readme_has_no_history_or_outside_references(pattern):
    hits = [line for line in TEXT.splitlines() if re.search(pattern, line, flags=re.I)]
    assert not hits, hits


def test_readme_links_resolve():
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", TEXT)
    assert targets
    missing = [t for t in targets if not t.startswith(("http://", "https://"))
               and not (ROOT / t).exists()]
    assert not missing, missing


def test_backend_table_lists_every_backend():
    import gradkern as gk  # not at the top: this file is also the paste driver

    section = TEXT.split("## Backends", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\| `([\w-]+)`", section, flags=re.M)
    assert sorted(names) == sorted(gk.BACKENDS)


def test_the_two_commands_are_the_makefile_targets():
    makefile = (ROOT / "Makefile").read_text()
    assert "make run" in TEXT and "make test" in TEXT
    run = re.search(r"^run:.*\n((?:\t.*\n)+)", makefile, flags=re.M).group(1)
    assert "gradkern vanishing --seed" in run  # what the README says `make run` runs
    assert re.search(r"^test:.*\n\t.*-m pytest", makefile, flags=re.M)


if __name__ == "__main__":  # the subprocess of test_python_block_runs_when_pasted
    sys.exit(paste(sys.stdin.read()))
