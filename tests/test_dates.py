"""tracker.dates.parse_day: every day option (sync, backfill, digest, export) is read and refused alike."""

from __future__ import annotations

from datetime import date

import pytest

from tracker import digest, export
from tracker.dates import parse_day
from tracker.errors import ConfigError


def test_parse_day_reads_iso_days_and_passes_none():
    assert parse_day(" 2026-11-16 ", "--since") == date(2026, 11, 16)
    assert parse_day(None, "--until") is None


@pytest.mark.parametrize(
    "call",
    [
        lambda: parse_day("2026-02-30", "--since"),
        lambda: digest.window_between("2026-02-30", "2026-03-01"),
        lambda: export.check_since("2026-02-30"),
    ],
)
def test_every_day_option_has_one_message(call):
    with pytest.raises(ConfigError) as caught:
        call()
    assert str(caught.value) == "--since '2026-02-30' is not a valid date (expected YYYY-MM-DD)"
