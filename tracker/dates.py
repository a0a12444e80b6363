"""The days and times people type on the command line (--since, --until, --from, --now): one parser each, one message style."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import overload

from tracker.errors import ConfigError


@overload
def parse_day(value: str, option: str) -> date: ...
@overload
def parse_day(value: None, option: str) -> None: ...
@overload
def parse_day(value: str | None, option: str) -> date | None: ...
def parse_day(value: str | None, option: str) -> date | None:
    """YYYY-MM-DD -> date (None passes through), or a one-line ConfigError naming the option."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(f"{option} {value!r} is not a valid date (expected YYYY-MM-DD)") from None


def parse_now(value: str | None) -> datetime:
    """--now (hidden; tests and reproducible output) or the clock, as an aware UTC datetime."""
    if not value:
        return datetime.now(timezone.utc)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(
            f"--now {value!r} is not a valid date-time (expected YYYY-MM-DDTHH:MM:SS+00:00)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
