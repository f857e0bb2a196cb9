"""The runnable snippets of README.md and docs/*.md: every ``>>>`` example runs (doctest) in a fresh
folder holding a copy of ``configs/``, so relative paths in the snippets work as they do in a checkout.
Blocks without ``>>>`` are sketches (they name models the reader brings) and are not run."""

from __future__ import annotations

import doctest
import re
import shutil
import subprocess
import sys

import pytest

from tests._helpers import REPO, cli_env

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RUNNABLE = [p for p in DOCS if ">>> " in p.read_text()]
SLOW = {"README.md"}  # trains and forgets a whole digits run (about 10 s of CPU)


def test_the_readme_has_runnable_snippets():
    assert REPO / "README.md" in RUNNABLE  # the test below is not vacuous


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name, marks=[pytest.mark.slow] if p.name in SLOW else [])
                                  for p in RUNNABLE])
def test_snippets_run(path, tmp_path, monkeypatch):
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    parser = doctest.DocTestParser()
    text = re.sub(r"^ *```.*$", "", path.read_text(), flags=re.M)  # a fence ends an example's output
    test = parser.get_doctest(text, {}, path.name, str(path), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out: list[str] = []
    runner.run(test, out=out.append)
    assert runner.failures == 0, "".join(out)
    assert runner.tries > 0


@pytest.mark.slow  # a fresh interpreter imports torch: seconds on a loaded machine
def test_import_obliviate_keeps_verification_and_the_audit_unloaded():
    """The top-level names of the heavy parts load on first use."""
    code = ("import sys, obliviate; heavy = ['obliviate.verify', 'obliviate.audit', 'sklearn']; "
            "print([m for m in heavy if m in sys.modules]); obliviate.verify_request; obliviate.run_audit; "
            "print([m for m in heavy[:2] if m not in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=120,
                         cwd=REPO, check=True).stdout.split("\n")
    assert out[:2] == ["[]", "[]"]
