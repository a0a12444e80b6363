"""The defaults ship inside the package, and `./rules` and `./db` override them.

A wheel once held neither the taxonomy nor the Datasette metadata, so `tracker demo` and `tracker serve`
worked only from a checkout. `.ci/run` installs the built wheel in a fresh venv and runs both from another
folder; these tests catch the same mistakes in seconds.
"""

from __future__ import annotations

import subprocess
import sys
from fnmatch import fnmatchcase
from importlib.resources import files
from pathlib import Path

import pytest

from tracker import config
from tracker.serve import datasette_command, metadata_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parent.parent
# What `train`, `demo`, `sync` and `serve` read at run time.
RULE_FILES = ("taxonomy.yml", "queries.yml", "labels.csv")
DATASETTE_FILES = (
    "metadata.yml",
    "plugins/tracker_readonly.py",
    "plugins/tracker_private.py",
    "plugins/tracker_feed.py",
    "plugins/tracker_links.py",
    "plugins/tracker_search.py",
    "static/tracker.css",
    "static/tracker.js",
)


def matches(path: str, pattern: str) -> bool:
    """`path` matches a setuptools package-data glob: `*` within one segment, `**` across any number."""
    parts, pats = path.split("/"), pattern.split("/")
    if not pats:
        return not parts
    if pats[0] == "**":
        return any(matches("/".join(parts[i:]), "/".join(pats[1:])) for i in range(len(parts) + 1))
    if not parts or not parts[0] or not fnmatchcase(parts[0], pats[0]):
        return False
    return matches("/".join(parts[1:]), "/".join(pats[1:])) if len(pats) > 1 else len(parts) == 1


def test_the_package_holds_the_default_rules_and_datasette_files() -> None:
    defaults = files("tracker") / "defaults"
    for name in RULE_FILES:
        assert (defaults / "rules" / name).is_file(), name
    for name in DATASETTE_FILES:
        assert (defaults / "db" / name).is_file(), name
    assert Path(str(defaults / "rules")) == config.DEFAULT_RULES_DIR
    assert Path(str(defaults / "db")) == config.DEFAULT_DB_DIR


def test_every_default_file_is_declared_as_package_data() -> None:
    """A file added to tracker/defaults/ that no package-data glob names would be missing from the wheel."""
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    globs = patterns["tracker"]
    shipped = sorted(
        p.relative_to(config.PACKAGE_DIR).as_posix()
        for p in config.PACKAGE_DIR.joinpath("defaults").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert len(shipped) >= len(RULE_FILES) + len(DATASETTE_FILES)
    missing = [path for path in shipped if not any(matches(path, glob) for glob in globs)]
    assert missing == []


def test_the_repository_keeps_one_copy_of_each_default() -> None:
    """No committed rules/taxonomy.yml or db/metadata.yml beside the package's: two copies would drift apart.

    `rules/` keeps only the sources of labels.csv (scripts/build_labels.py); `rules/` and `db/` in the
    working directory are where a user puts an override.
    """
    listed = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", "HEAD", "--", "rules", "db"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    tracked = set(listed.stdout.split())
    copies = {f"rules/{n}" for n in RULE_FILES} | {f"db/{n}" for n in DATASETTE_FILES}
    assert tracked & copies == set()
    assert not {path for path in tracked if path.startswith(("db/plugins/", "db/static/"))}


def test_rules_come_from_the_package_unless_overridden(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("TRACKER_RULES", raising=False)
    monkeypatch.chdir(tmp_path)
    assert config.rules_dir() == config.DEFAULT_RULES_DIR
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "reviewed.csv").write_text("")  # a folder without a taxonomy is no override
    assert config.rules_dir() == config.DEFAULT_RULES_DIR
    (tmp_path / "rules" / "taxonomy.yml").write_text("tags: []\n")
    assert config.rules_dir() == tmp_path / "rules"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("TRACKER_RULES", str(elsewhere))
    assert config.rules_dir() == elsewhere


def test_datasette_files_come_from_the_package_unless_overridden_one_by_one(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert metadata_path() == config.DEFAULT_DB_DIR / "metadata.yml"
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "metadata.yml").write_text("databases:\n  tracker: {}\n")
    assert metadata_path() == tmp_path / "db" / "metadata.yml"
    # An own metadata file keeps the shipped plugins, which guard the private tables and refuse writes.
    cmd = datasette_command(tmp_path / "papers.db", tmp_path / "m.yml", "127.0.0.1", 8001)
    assert cmd[cmd.index("--plugins-dir") + 1] == str(config.DEFAULT_DB_DIR / "plugins")
    assert cmd[cmd.index("--static") + 1] == f"tracker-static:{config.DEFAULT_DB_DIR / 'static'}"
    (tmp_path / "db" / "plugins").mkdir()
    cmd = datasette_command(tmp_path / "papers.db", tmp_path / "m.yml", "127.0.0.1", 8001)
    assert cmd[cmd.index("--plugins-dir") + 1] == str(tmp_path / "db" / "plugins")
