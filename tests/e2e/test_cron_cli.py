"""`aster cron next`: the contract of issue 4, against the real binary."""
import re
from datetime import datetime, timezone

import pytest

from conftest import run_aster

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def nxt(*args):
    return run_aster("cron", "next", *args)


def ok(*args):
    r = nxt(*args)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    return r.stdout.splitlines()


def usage_error(*args):
    """Exit 2, nothing on stdout, exactly one line on stderr; returns it."""
    r = nxt(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and r.stderr.endswith("\n"), r.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_format_and_default_count():
    out = ok("--from", "2026-03-08T06:30:00Z", "0 * * * *")
    assert out == ["2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z", "2026-03-08T09:00:00Z",
                   "2026-03-08T10:00:00Z", "2026-03-08T11:00:00Z"]
    assert all(LINE.match(x) for x in out)


def test_default_from_is_now():
    out = ok("--count", "3", "* * * * * *")
    now = datetime.now(timezone.utc).timestamp()
    first = datetime.strptime(out[0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert now - 2 < first.timestamp() <= now + 3
    assert len(out) == 3


def test_strictly_after_and_count():
    assert ok("--from", "2026-01-01T00:00:00Z", "--count", "2", "0 0 * * *") == [
        "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]
    assert len(ok("--from", "2026-01-01T00:00:00Z", "--count", "1000", "* * * * *")) == 1000
    assert len(ok("--from", "2026-01-01T00:00:00Z", "--count=1", "* * * * *")) == 1


def test_from_with_offset_and_fraction():
    # 01:30:00.5+05:30 is 20:00:00.5Z the day before
    assert ok("--from", "2026-01-01T01:30:00.5+05:30", "--count", "2", "* * * * * *") == [
        "2025-12-31T20:00:01Z", "2025-12-31T20:00:02Z"]
    assert ok("--from=2026-01-01T00:00:00-08:00", "--count", "1", "0 * * * *") == [
        "2026-01-01T09:00:00Z"]


def test_timezone_and_dst():
    # New York spring forward: 02:30 does not exist, the fixed hour fires at 03:00 EDT
    assert ok("--tz", "America/New_York", "--from", "2026-03-08T00:00:00Z", "--count", "2",
              "30 2 * * *") == ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]
    assert ok("--tz", "America/New_York", "--from", "2026-03-08T00:00:00Z", "--count", "1",
              "--dst-gap", "skip", "30 2 * * *") == ["2026-03-09T06:30:00Z"]
    # fall back: fixed hour once, hour * twice
    assert ok("--tz", "America/New_York", "--from", "2026-11-01T00:00:00Z", "--count", "2",
              "30 1 * * *") == ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
    assert ok("--tz", "America/New_York", "--from", "2026-11-01T05:00:00Z", "--count", "3",
              "30 * * * *") == ["2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z",
                                "2026-11-01T07:30:00Z"]
    assert ok("--tz=America/New_York", "--from", "2026-11-01T00:00:00Z", "--count", "2",
              "--dst-overlap=last", "30 1 * * *") == ["2026-11-01T06:30:00Z",
                                                      "2026-11-02T06:30:00Z"]
    # Lord Howe's 30-minute shift
    assert ok("--tz", "Australia/Lord_Howe", "--from", "2026-04-04T14:00:00Z", "--count", "2",
              "--dst-overlap", "both", "45 1 * * *") == ["2026-04-04T14:45:00Z",
                                                         "2026-04-04T15:15:00Z"]


def test_expression_split_over_words():
    assert ok("--from", "2026-01-01T00:00:00Z", "--count", "1", "0", "9", "*", "*", "MON-FRI") \
        == ["2026-01-01T09:00:00Z"]


def test_options_after_expression():
    assert ok("0 9 * * *", "--from", "2026-01-01T00:00:00Z", "--count", "1") == [
        "2026-01-01T09:00:00Z"]


def test_syntax_elements():
    f = ("--from", "2024-01-01T00:00:00Z", "--count", "3")
    assert ok(*f, "0 0 L * *") == ["2024-01-31T00:00:00Z", "2024-02-29T00:00:00Z",
                                   "2024-03-31T00:00:00Z"]
    assert ok(*f, "0 0 ? * mon#1") == ["2024-02-05T00:00:00Z", "2024-03-04T00:00:00Z",
                                       "2024-04-01T00:00:00Z"]
    assert ok(*f, "0 0 13 * FRI")[:2] == ["2024-01-05T00:00:00Z", "2024-01-12T00:00:00Z"]
    assert ok(*f, "@every 90s") == ["2024-01-01T00:01:30Z", "2024-01-01T00:03:00Z",
                                    "2024-01-01T00:04:30Z"]
    assert ok(*f, "@WEEKLY")[0] == "2024-01-07T00:00:00Z"
    assert ok(*f, "*/90 * * * *")[0] == "2024-01-01T01:00:00Z"


def test_at_future_and_past():
    assert ok("--from", "2024-01-01T00:00:00Z", "@at 2024-06-01T12:00:00+02:00") == [
        "2024-06-01T10:00:00Z"]
    r = nxt("--from", "2024-01-01T00:00:00Z", "@at 2023-06-01T12:00:00Z")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


@pytest.mark.parametrize("expr,line", [
    ("0 0 32 * *", "error: day-of-month: 32 is out of range 1-31"),
    ("*/0 * * * *", "error: minute: step 0 in '*/0' is invalid (must be at least 1)"),
    ("5- * * * *", "error: minute: incomplete range '5-'"),
    ("1,,2 * * * *", "error: minute: empty item in list '1,,2'"),
    ("0 24 * * *", "error: hour: 24 is out of range 0-23"),
    ("0 0 * 13 *", "error: month: 13 is out of range 1-12"),
    ("0 0 * * 8", "error: day-of-week: 8 is out of range 0-7"),
    ("0 0 * JANUARY *", "error: month: invalid value 'JANUARY' (expected 1-12 or JAN-DEC)"),
    ("0 0 30 2 *", "error: day-of-month: 30 never occurs in month 2, so the schedule never fires"),
    ("0 0 31 4 *", "error: day-of-month: 31 never occurs in month 4, so the schedule never fires"),
    ("* * * *", "error: schedule: expected 5 fields (minute hour day-of-month month "
                "day-of-week) or 6 (second first), got 4"),
    ("@fortnightly", None),
    ("@every 0s", "error: schedule: @every 0s: the period must be at least 1s"),
    ("@at soon", None),
    ("0 L * * *", "error: hour: 'L' is only valid in day-of-month and day-of-week"),
])
def test_invalid_expression(expr, line):
    got = usage_error("--from", "2024-01-01T00:00:00Z", expr)
    if line:
        assert got == line
    else:
        assert got.startswith("error: schedule: ")


def test_invalid_zone():
    assert usage_error("--tz", "Mars/Base", "* * * * *") == \
        "error: timezone: unknown time zone 'Mars/Base'"
    assert usage_error("--tz", "", "* * * * *").startswith("error: timezone: ")
    assert usage_error("--tz", "../../etc/passwd", "* * * * *").startswith("error: timezone: ")


@pytest.mark.parametrize("count", ["0", "1001", "abc", "-1", "", "5x"])
def test_bad_count(count):
    assert usage_error("--count", count, "* * * * *").startswith("error: --count: ")


def test_bad_options():
    assert usage_error("--from", "yesterday", "* * * * *").startswith("error: --from: ")
    assert usage_error("--dst-gap", "maybe", "* * * * *").startswith("error: dst_gap: ")
    assert usage_error("--dst-overlap", "x", "* * * * *").startswith("error: dst_overlap: ")
    assert usage_error("--bogus", "* * * * *").startswith("error: --bogus: unknown option")
    assert usage_error("--bogus=1", "* * * * *").startswith("error: --bogus: unknown option")
    assert usage_error("* * * * *", "--count").startswith("error: --count: ")
    assert usage_error().startswith("error: schedule: ")
    r = run_aster("cron", "later", "* * * * *")
    assert r.returncode == 2 and r.stdout == "" and len(r.stderr.splitlines()) == 1


def test_help():
    r = nxt("--help")
    assert r.returncode == 0 and "aster cron next" in r.stdout
