"""Where things live: every file path and secret the tracker reads is resolved here.

Lookup order for settings is: explicit option, then the 600-mode `auth.json`, then the
environment (`TRACKER_*`). Secrets are read only when a command needs them, never at import.

The default rules (taxonomy, queries, labels) and the Datasette files (metadata, plugins, static) ship
inside the package, in `tracker/defaults/rules/` and `tracker/defaults/db/`: that is the one copy in
the repository, so `pip install .` or the wheel runs from any folder. A `rules/` or `db/` folder in
the working directory holding the same file names overrides them (copy the defaults there to edit them).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from tracker.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR / "data"
# The shipped defaults; `./rules` and `./db` override them (rules_dir, datasette_path).
DEFAULT_RULES_DIR = PACKAGE_DIR / "defaults" / "rules"
DEFAULT_DB_DIR = PACKAGE_DIR / "defaults" / "db"
# The checkout, for scripts and benchmarks run from a clone (meaningless in an installed wheel).
REPO_DIR = PACKAGE_DIR.parent

USER_AGENT_BASE = "tracker/0.1 (multimodal-LLM literature tracker; https://github.com/tracker/tracker)"


def rules_dir() -> Path:
    """The folder holding taxonomy.yml, queries.yml and labels.csv.

    `TRACKER_RULES` wins; then `./rules` in the working directory if it holds a taxonomy.yml; then the
    defaults shipped in the package.
    """
    env = os.environ.get("TRACKER_RULES")
    if env:
        if not Path(env).is_dir():  # a typo here would silently fall back to default categories and tags
            raise ConfigError(f"TRACKER_RULES={env}: no such folder")
        return Path(env)
    cwd_rules = Path.cwd() / "rules"
    if (cwd_rules / "taxonomy.yml").exists():
        return cwd_rules
    return DEFAULT_RULES_DIR


def datasette_path(name: str) -> Path:
    """A Datasette file or folder (`metadata.yml`, `plugins`, `static`): `./db/<name>` if it exists, else
    the default shipped in the package.

    Each name is resolved on its own, so overriding the metadata keeps the shipped plugins, which guard
    the private tables and refuse writes.
    """
    override = Path.cwd() / "db" / name
    return override if override.exists() else DEFAULT_DB_DIR / name


def model_paths(db_path: str | Path) -> tuple[Path, Path]:
    """The model file and its JSON sidecar, kept beside the database they were trained for."""
    base = Path(db_path)
    stem = base.with_suffix("")
    return stem.parent / f"{stem.name}.classifier.skops", stem.parent / f"{stem.name}.classifier.json"


def lock_path(db_path: str | Path) -> Path:
    """The lock file that serialises writers of one database."""
    return Path(f"{db_path}.lock")


def outbox_dir(db_path: str | Path) -> Path:
    """Where `digest --send` notes a message the server accepted before the database records it."""
    return Path(f"{db_path}.outbox")


def auth_path() -> Path:
    """`auth.json`: SMTP settings and secrets; `TRACKER_AUTH` overrides the location."""
    return Path(os.environ.get("TRACKER_AUTH", "auth.json"))


def load_auth(path: Path | None = None) -> dict[str, str]:
    """Read auth.json, refusing a file that other users can read (it may hold a password)."""
    path = path or auth_path()
    if not path.exists():
        return {}
    if not path.is_file():
        raise ConfigError(f"{path}: not a file (auth.json holds the SMTP settings)")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"{path}: mode {mode:o} lets others read it; run: chmod 600 {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}): {exc.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return {str(k): str(v) for k, v in data.items() if not str(k).startswith("//")}


def save_auth(values: dict[str, str], path: Path | None = None) -> Path:
    """Write auth.json with mode 600 from the first byte (never world-readable, even briefly)."""
    path = path or auth_path()
    data = {"// Note": "This file stores secrets for tracker. Do not share it or commit it."}
    data.update(values)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.chmod(path, 0o600)
    return path


def setting(name: str, option: str | None = None, auth: dict[str, str] | None = None) -> str | None:
    """Resolve one setting: explicit option, then auth.json key `name`, then env `TRACKER_<NAME>`."""
    if option:
        return option
    if auth and auth.get(name):
        return auth[name]
    return os.environ.get(f"TRACKER_{name.upper()}") or None
