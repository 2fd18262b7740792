"""The documentation site (mkdocs.yml, docs/) builds with warnings as errors, and its CLI page
lists every option of the ``dftad`` command."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _nav_pages(nav):
    """Every Markdown file named in mkdocs.yml's ``nav`` (nested lists of {title: page})."""
    for entry in nav:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            if isinstance(value, list):
                yield from _nav_pages(value)
            elif not value.startswith(("http://", "https://")):
                yield value


def test_nav_pages_exist():
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (pip install -e '.[docs]')")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = list(_nav_pages(config["nav"]))
    assert "index.md" in pages and "api/index.md" in pages
    missing = [p for p in pages if not (ROOT / config["docs_dir"] / p).is_file()]
    assert not missing, f"pages in mkdocs.yml's nav without a file in docs/: {missing}"


def _cli_options():
    from dftad import cli

    parser = cli._parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        for action in p._actions:
            if not isinstance(action, argparse._HelpAction):
                yield name, action.option_strings or [action.metavar or action.dest]


def test_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")  # Material's banner about MkDocs 2.0
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
         "-d", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    for page in ("index.html", "cli/index.html", "api/index.html", "concepts/index.html"):
        assert (site / page).is_file(), page
    cli_page = (site / "cli" / "index.html").read_text()
    missing = [(name, opts) for name, opts in _cli_options()
               if not any(f"<code>{o}</code>" in cli_page for o in opts)]
    assert not missing, f"options of the dftad command missing from the CLI page: {missing}"
    api = (site / "api" / "drivers" / "index.html").read_text()
    assert 'id="dftad.energy.kernel"' in api and 'id="dftad.forces.energy_and_forces"' in api
