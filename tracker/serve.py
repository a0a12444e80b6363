"""Run Datasette on a tracker database, read-only, with the project's metadata, queries and plugins.

Datasette runs as a child process (`python -m datasette`): the tracker never imports it, so the two
can be upgraded apart. The metadata, plugins and static files ship in the package (`tracker/defaults/db/`),
and `./db/metadata.yml`, `./db/plugins/` or `./db/static/` override them one by one (`config.datasette_path`).
Datasette names a database after its file, while the metadata describes a database called `tracker`;
the metadata is therefore copied to a temporary file with that key renamed to the served file's name. The database is opened normally (not `--immutable`), because
the nightly sync keeps writing to it through WAL; writes through the web are refused by Datasette
itself (read connections are `mode=ro`, arbitrary SQL must be a SELECT) and by the
`tracker_readonly` plugin (every connection, including the one canned write queries and plugins
would use, is `query_only` with an authorizer that denies writes).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tracker import store
from tracker.config import datasette_path
from tracker.errors import ConfigError, TrackerError

log = logging.getLogger(__name__)

METADATA_DB_KEY = "tracker"
LOOPBACK = "127.0.0.1"
# Datasette's defaults keep a slow ad-hoc query from holding a worker; the page size suits a reading list.
SETTINGS = {
    "sql_time_limit_ms": "3000",
    "default_page_size": "50",
    "facet_time_limit_ms": "500",
    # suggestions run a query per column on every table page; the useful facets are configured instead
    "suggest_facets": "off",
}


def metadata_path() -> Path:
    """`./db/metadata.yml` if present, else the package's; refused with a clear message if it is missing."""
    path = datasette_path("metadata.yml")
    if not path.is_file():
        raise TrackerError(
            f"{path}: Datasette metadata not found (is the tracker package installed completely?)"
        )
    return path


def load_metadata(db_name: str, path: Path | None = None) -> dict[str, Any]:
    """The metadata with its `tracker` database entry renamed to `db_name` (the served file's stem)."""
    path = path or metadata_path()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    databases = data.get("databases") if isinstance(data, dict) else None
    if not isinstance(databases, dict) or METADATA_DB_KEY not in databases:
        raise ConfigError(f"{path}: expected a 'databases: {METADATA_DB_KEY}:' section")
    databases[db_name] = databases.pop(METADATA_DB_KEY)
    return data


def check_host(host: str) -> bool:
    """True if `host` is a loopback address; anything else is allowed but reported (it exposes the data)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError as exc:
        raise ConfigError(f"--host {host!r} is not an IP address (use 127.0.0.1, the default)") from exc


def datasette_command(db_path: Path, metadata_file: Path, host: str, port: int) -> list[str]:
    """The argv that starts Datasette on `db_path` with our metadata, plugins and settings."""
    cmd = [
        sys.executable,
        "-m",
        "datasette",
        "serve",
        str(db_path),
        "--metadata",
        str(metadata_file),
        "--plugins-dir",
        str(datasette_path("plugins")),
        "--static",
        f"tracker-static:{datasette_path('static')}",
        "--host",
        host,
        "--port",
        str(port),
    ]
    for name, value in SETTINGS.items():
        cmd += ["--setting", name, value]
    return cmd


def check_address(host: str, port: int) -> None:
    """Refuse, in one line, an address Datasette could not listen on (before saying "Serving ...")."""
    check_host(host)  # an IP address (or localhost) only: no name lookup, so no DNS query leaves the machine
    flags = 0 if host == "localhost" else socket.AI_NUMERICHOST
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=flags)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(f"--host {host!r}: not an address this machine has ({exc})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(
            socket.SOL_SOCKET, socket.SO_REUSEADDR, 1
        )  # as uvicorn does: TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError as exc:
            hint = " (is another server using it?)" if exc.errno == errno.EADDRINUSE else ""
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None


def serve(db_path: str | Path, host: str = LOOPBACK, port: int = 8001) -> int:
    """Start Datasette and wait for it; return its exit status. SIGTERM/SIGINT are passed on to it.

    Stopping it with Ctrl-C or SIGTERM counts as success (status 0).
    """
    path = Path(db_path)
    store.open_readonly(path).close()  # refuses a missing or foreign file; never writes (no WAL switch)
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port} is outside 0..65535")
    if not check_host(host):
        log.warning("serving on %s: anyone who can reach this address can read the database", host)
    metadata = load_metadata(path.stem)
    with tempfile.TemporaryDirectory(prefix="tracker-serve-") as tmp:
        metadata_file = Path(tmp) / "metadata.yml"
        metadata_file.write_text(
            yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
        cmd = datasette_command(path, metadata_file, host, port)
        log.info("running %s", " ".join(cmd))
        proc = subprocess.Popen(cmd)

        def forward(signum: int, _frame: Any) -> None:
            proc.send_signal(signum)

        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            code = proc.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)
    if code < 0:  # ended by a signal: being stopped is a normal end, anything else is reported as 128+N
        return 0 if -code in (signal.SIGTERM, signal.SIGINT) else 128 - code
    return code
