"""tracker.dates.parse_day: every day option (sync, backfill, digest, export) is read and refused alike."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from tracker import digest, export
from tracker.dates import parse_day, parse_now
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


def test_parse_now_is_aware_utc_and_refuses_nonsense_in_the_same_style():
    assert parse_now("2026-11-23T06:00:00") == datetime(2026, 11, 23, 6, tzinfo=timezone.utc)
    assert parse_now(None).tzinfo is not None
    with pytest.raises(ConfigError, match=r"^--now 'monday' is not a valid date-time \(expected "):
        parse_now("monday")


@pytest.mark.parametrize(
    "week, since, until, label",
    [
        ("2026-W47", None, None, "2026-W47"),
        (None, "2026-11-16", None, "2026-11-16..2026-11-25"),
        (None, None, None, "2026-W47"),
    ],
)
def test_digest_window_from_options(week, since, until, label):
    assert digest.window_from_options(week, since, until, date(2026, 11, 25)).label == label
