"""The days people type on the command line (--since, --until, --from): one parser, one error message."""

from __future__ import annotations

from datetime import date
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
