"""The docs stay true: generated regions current, cited files and names real.

``benchmarks/docs_tables.py`` rewrites the regions of README.md and docs/*.md
marked ``<!-- generated: NAME -->`` from the saved results, the registries
and fast commands; ``--check`` fails when one differs from what it would
write.  Paths and dotted names the docs cite in backticks must exist, so a
moved module shows up here rather than in a reader's shell.
"""
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "benchmarks" / "docs_tables.py"
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


def _generator(*args, cwd=ROOT):
    env = os.environ.copy()
    env.pop("NUMBA_ENABLE_CUDASIM", None)  # it runs `gradkern chain` as a user would
    return subprocess.run([sys.executable, str(GENERATOR), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_generated_regions_are_current():
    out = _generator("--check")
    assert out.returncode == 0, (
        "generated regions are stale; run `python benchmarks/docs_tables.py`\n"
        + out.stdout[-6000:] + out.stderr[-2000:])


def test_check_fails_on_a_stale_region_and_the_rewrite_fixes_it(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# t\n\n<!-- generated: perf-busy -->\n| typed | by hand |\n"
                   "<!-- end generated -->\n\ntail\n")
    stale = _generator("--check", str(doc))
    assert stale.returncode == 1
    assert "typed | by hand" in stale.stdout  # the diff shows what would go
    assert _generator(str(doc)).returncode == 0
    text = doc.read_text()
    assert "busy, TBB" in text and "typed" not in text and text.endswith("tail\n")
    assert _generator("--check", str(doc)).returncode == 0


def test_unknown_region_is_an_error(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- generated: no-such-table -->\n<!-- end generated -->\n")
    out = _generator("--check", str(doc))
    assert out.returncode != 0 and "no-such-table" in out.stderr


def _backticked(path):
    return re.findall(r"`([^`\n]+)`", path.read_text(encoding="utf-8"))


#: a repository path in backticks: gradkern/..., tests/..., benchmarks/..., cuda/..., docs/...
REPO_PATH = re.compile(r"^(?:gradkern|tests|benchmarks|cuda|docs)/[\w./*-]*$")
#: build outputs and files the commands write are not in a clone
NOT_IN_CLONE = ("cuda/build/", "benchmarks/results/cpu.json", "benchmarks/results/sweep-cpu.json")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_cited_paths_exist(doc):
    missing = []
    for token in _backticked(doc):
        path = token.split()[0]
        if not REPO_PATH.match(path) or path.startswith(NOT_IN_CLONE):
            continue
        if not (list(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()):
            missing.append(path)
    assert not missing, f"{doc.name} cites {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_cited_names_exist(doc):
    """``gradkern.x.y`` in backticks is an importable module or an attribute of one."""
    missing = []
    for token in _backticked(doc):
        if not re.fullmatch(r"gradkern(\.\w+)+", token):
            continue
        parts = token.split(".")
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            try:
                for attr in parts[i:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                missing.append(token)
            break
        else:
            missing.append(token)
    assert not missing, f"{doc.name} cites {missing}"


@pytest.mark.parametrize("doc", [d for d in DOCS if d.name != "CHANGELOG.md"],
                         ids=lambda p: p.name)
def test_docs_have_no_session_history(doc):
    """History goes to CHANGELOG.md; a clone has no issue tracker or shared folder."""
    text = doc.read_text(encoding="utf-8")
    hits = re.findall(r".*(?:issue\s*#?\d|this session|\.\./shared|seed notebook).*", text, re.I)
    assert not hits, hits


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc):
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8"))
    missing = [t for t in links if not t.startswith(("http://", "https://"))
               and not (doc.parent / t).exists()]
    assert not missing, f"{doc.name} links to {missing}"
