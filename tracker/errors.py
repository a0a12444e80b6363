"""The project's exceptions: every failure a user can cause or meet, with the context to act on it.

The CLI turns any `TrackerError` into a one-line message and a non-zero exit, so a
message here must stand on its own on one line (no traceback follows it).
"""

from __future__ import annotations


class TrackerError(Exception):
    """Base class: a failure the user should read about, never a traceback."""

    exit_code = 1

    def __str__(self) -> str:
        # One line, whatever the wrapped message held.
        return " ".join(super().__str__().split())


class ConfigError(TrackerError):
    """A bad rules file, option value or configuration entry."""

    exit_code = 2


class InputError(TrackerError):
    """A file or response that is not what it claims to be (malformed XML, entity bomb, truncated body)."""


class FetchError(TrackerError):
    """The network gave up on us after the retries were spent."""


class LockedError(TrackerError):
    """Another writer holds the database lock."""

    exit_code = 75  # EX_TEMPFAIL: cron and monitors read it as "try again later"


class ModelError(TrackerError):
    """A classifier model that is missing, stale or from another scikit-learn version."""


class MailError(TrackerError):
    """An SMTP send that failed (refused, timed out, bad credentials)."""
