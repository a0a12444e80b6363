"""Write a file the user names (`--out`) whole or not at all, and never over a database.

The content goes to a temporary file in the target's folder, renamed over the target once complete:
a failed write leaves the old file as it was. Through a symlink the file it points to is replaced and
the link kept. The tracker's own database and its companions, and any SQLite file, are refused.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from tracker.errors import ConfigError

SQLITE_HEADER = b"SQLite format 3\x00"
# A write-ahead log starts with one of these big-endian magic numbers (sqlite.org/fileformat2.html, 4.1):
# replacing a live -wal loses every transaction not yet checkpointed.
WAL_MAGIC = (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83")


def is_sqlite_file(path: Path) -> bool:
    """True when `path` (followed through symlinks) is a regular file starting with SQLite's 16-byte header,
    or is a SQLite write-ahead log."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except OSError:  # missing, unreadable, a folder: not a database we could destroy by renaming over it
        return False
    return head == SQLITE_HEADER or head[:4] in WAL_MAGIC


def database_files(db_path: str | Path, extra: Sequence[str | Path] = ()) -> list[str]:
    """The database and its companion files, by the name given and by the file it names: what an --out FILE
    must never replace. SQLite names -wal/-shm/-journal after the file a symlink points to."""
    names = {str(db_path), str(Path(db_path).resolve())}
    files = [f"{name}{suffix}" for name in sorted(names) for suffix in ("", "-wal", "-shm", "-journal")]
    return files + [str(p) for p in extra]


def check_target(out: str | Path, protect: Sequence[str | Path] = ()) -> Path:
    """The file `out` names (through symlinks), or a one-line ConfigError when it must not be replaced.

    :param protect: files `out` must never replace (the database and its companions)
    """
    target = Path(out).resolve()
    if any(target == Path(p).resolve() for p in protect):
        raise ConfigError(f"--out {out}: that is the database (or one of its files); choose another name")
    if target.is_dir():
        raise ConfigError(f"--out {out}: is a folder")
    if target.is_file() and is_sqlite_file(target):
        raise ConfigError(f"--out {out}: {target} is a SQLite database; refusing to replace it")
    if not target.parent.is_dir():
        raise ConfigError(f"--out {out}: folder {target.parent} does not exist")
    return target


@contextlib.contextmanager
def replacing(out: str | Path, protect: Sequence[str | Path] = ()) -> Iterator[Path]:
    """Yield a temporary path (same suffix) next to `out`'s target; rename it over the target if the block succeeds.

    A FIFO or device (`/dev/stdout`) is yielded as it is: renaming a file over it would replace it.
    """
    target = check_target(out, protect)
    if target.exists() and not target.is_file():
        yield Path(out)
        return
    try:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write in {target.parent}: {exc.strerror}") from None
    tmp = Path(name)
    try:
        # mkstemp makes the file private (0600). Replacing a file keeps that file's mode; a new one gets what
        # the user's umask gives any new file (0644 under the usual 022).
        with contextlib.suppress(OSError):  # a filesystem without modes: keep mkstemp's
            os.fchmod(fd, stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o666 & ~_umask())
        os.close(fd)
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    umask = os.umask(0)  # the only way to read it; a CLI process has no other thread to disturb
    os.umask(umask)
    return umask
