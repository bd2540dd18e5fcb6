"""End-to-end tests of the jobs REST API (issue 5) against the real `aster`
binary: every endpoint, every error, API keys, durability, and the OpenAPI
document.  They follow the issue's contract, not the implementation.

Where a test needs executions in a given state, it stops the server, writes
the rows into the SQLite file directly and starts a new server on the same
file, so that it does not depend on the engine's timing.  Jobs fire once a year
(BASE) so that no scheduled fire happens during a test."""
import calendar
import datetime as dt
import json
import pathlib
import re
import signal
import socket
import time
import urllib.parse

import pytest

from conftest import db_execute, http, new_database, run_aster, store_url

ROOT = pathlib.Path(__file__).resolve().parents[2]
JOBS = "/api/v1/jobs"
EXECS = "/api/v1/executions"
PREVIEW = "/api/v1/schedule/preview"

TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                     r"[0-9a-fA-F]{12}$")
UUID7_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,200}$")

# The two job documents of the systems Aster replaces, exactly as the issue
# quotes them (the URL completed).
SEED_HTTP = {"schedule": "31 10-15 1 * * MON-FRI", "api": "http://example.com/hook",
             "type": "ATLEAST_ONCE"}
SEED_COMMAND = {"name": "backup", "schedule": "0 2 * * *", "command": "/usr/local/bin/backup",
                "args": ["--full"], "env": {"X": "1"}, "max_retries": 3}

# A job that fires once a year: next_fire_at is stable for the test's life.
BASE = {"schedule": "0 0 1 1 *", "api": "http://127.0.0.1:9/hook"}
CMD_BASE = {"schedule": "0 0 1 1 *", "command": "/bin/true"}

DEFAULTS = {
    "timezone": "UTC", "type": "ATLEAST_ONCE", "max_retries": 3, "retry_backoff_ms": 1000,
    "retry_backoff_max_ms": 3600000, "timeout_ms": 30000, "overlap": "allow",
    "misfire": "run_once", "misfire_grace_ms": 60000, "dst_gap": "auto", "dst_overlap": "auto",
    "paused": False, "alert_after_failures": 0, "alert_if_no_success_for": None,
}
# Every field of the Job response form the issue lists (the target's fields
# depend on its kind and are checked separately).
JOB_FIELDS = {"id", "name", "schedule", "timezone", "type", "max_retries", "retry_backoff_ms",
              "retry_backoff_max_ms", "timeout_ms", "overlap", "misfire", "misfire_grace_ms",
              "dst_gap", "dst_overlap", "paused", "alert_webhook", "alert_after_failures",
              "alert_if_no_success_for", "next_fire_at", "created_at", "updated_at"}
EXEC_FIELDS = {"id", "job_id", "scheduled_at", "trigger", "status", "attempt", "started_at",
               "finished_at", "duration_ms", "drift_ms", "error"}
EXEC_STATUSES = {"pending", "running", "succeeded", "failed", "timed_out", "skipped", "missed",
                 "cancelled"}
CRON_FIELDS = {"schedule", "second", "minute", "hour", "day-of-month", "month", "day-of-week"}


# ---- helpers ---------------------------------------------------------------

def call(s, method, path, body=None, headers=None):
    return http(method, s.url + path, body, headers)


def create(s, doc=None, **fields):
    d = dict(BASE if doc is None else doc)
    d.update(fields)
    r = call(s, "POST", JOBS, d)
    assert r.status == 201, (r.status, r.body)
    return r.json()


def trigger(s, job_id):
    r = call(s, "POST", f"{JOBS}/{job_id}/trigger")
    assert r.status == 202, (r.status, r.body)
    return r.json()


def q(path, **params):
    return path + "?" + urllib.parse.urlencode(params) if params else path


def field_ok(got, expected):
    """`got` names one of `expected`, or a member of it (headers.X, args[1])."""
    if got is None:
        return False
    return any(got == e or got.startswith(e + ".") or got.startswith(e + "[") for e in expected)


def assert_error(r, status, fields=None, code=None):
    """The issue's error shape: {"error": {"code", "message", "field"?}}."""
    assert r.status == status, (r.status, r.body)
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    body = r.json()
    assert list(body) == ["error"], body
    e = body["error"]
    assert set(e) <= {"code", "message", "field"}, e
    assert isinstance(e["code"], str) and e["code"], e
    assert isinstance(e["message"], str) and e["message"], e
    if "field" in e:
        assert isinstance(e["field"], str) and e["field"], e
    if fields is not None:
        assert field_ok(e.get("field"), fields), f"field should name one of {fields}: {e}"
    if code is not None:
        assert e["code"] == code, e
    return e


def parse_time(s):
    assert TIME_RE.match(s), s
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)


def ms(s):
    t = parse_time(s)
    return calendar.timegm(t.timetuple()) * 1000 + t.microsecond // 1000


def fmt_ms(m):
    t = dt.datetime.fromtimestamp(m / 1000, dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{m % 1000:03d}Z"


def cron_next(expr, frm=None, tz=None, count=None):
    """`aster cron next`, converted to the API's millisecond form."""
    args = ["cron", "next"]
    if tz:
        args += ["--tz", tz]
    if frm:
        args += ["--from", frm]
    if count:
        args += ["--count", str(count)]
    p = run_aster(*args, "--", expr)
    assert p.returncode == 0, p.stderr
    out = []
    for line in p.stdout.split():
        assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$", line), line
        out.append(line[:-1] + ".000Z")
    return out


def all_pages(s, path, limit, **params):
    """Follows next_cursor to the end; returns the items and the page sizes."""
    items, sizes, cursor = [], [], None
    for _ in range(1000):
        p = dict(params, limit=limit)
        if cursor:
            p["cursor"] = cursor
        r = call(s, "GET", q(path, **p))
        assert r.status == 200, (r.status, r.body)
        body = r.json()
        assert set(body) == {"items", "next_cursor"}, body
        assert len(body["items"]) <= limit
        items += body["items"]
        sizes.append(len(body["items"]))
        cursor = body["next_cursor"]
        if cursor is None:
            return items, sizes
        assert isinstance(cursor, str) and cursor
    pytest.fail("pagination never ended")


def stored(s):
    """What the server holds: every job and every execution."""
    r1 = call(s, "GET", q(JOBS, limit=1000))
    r2 = call(s, "GET", q(EXECS, limit=1000))
    assert r1.status == 200 and r2.status == 200, (r1.body, r2.body)
    return r1.json(), r2.json()


def with_db(start_server, s, *statements):
    """Stops `s`, runs SQL on its database, starts a new server on it."""
    s.stop()
    db_execute(s.db, *statements)
    return start_server(db=s.db)


def check_job(j):
    assert JOB_FIELDS <= set(j), JOB_FIELDS - set(j)
    assert UUID7_RE.match(j["id"]), j["id"]
    assert NAME_RE.match(j["name"]) and not UUID_RE.match(j["name"]), j["name"]
    for k in ("created_at", "updated_at"):
        assert TIME_RE.match(j[k]), (k, j[k])
    assert j["next_fire_at"] is None or TIME_RE.match(j["next_fire_at"]), j["next_fire_at"]
    # UUIDv7: the first 48 bits are the creation time in Unix milliseconds.
    assert abs(int(j["id"].replace("-", "")[:12], 16) - ms(j["created_at"])) < 5000


def check_exec(e):
    assert EXEC_FIELDS <= set(e), EXEC_FIELDS - set(e)
    assert "http_status" in e or "exit_code" in e, e
    assert UUID_RE.match(e["id"]), e
    assert e["status"] in EXEC_STATUSES, e
    assert e["trigger"] in {"schedule", "manual", "catchup"}, e
    assert TIME_RE.match(e["scheduled_at"]), e


# ---- create ----------------------------------------------------------------

def test_create_answers_201_location_and_every_default(server):
    r = call(server, "POST", JOBS, BASE)
    assert r.status == 201, r.body
    assert r.headers["Content-Type"].startswith("application/json")
    j = r.json()
    check_job(j)
    assert r.headers["Location"].endswith(f"{JOBS}/{j['id']}"), r.headers["Location"]
    for k, v in DEFAULTS.items():
        assert j[k] == v, (k, j[k], v)
    assert j["schedule"] == BASE["schedule"]
    assert j["api"] == BASE["api"]
    assert j.get("method", "POST") == "POST"  # a POST unless `method` says otherwise
    assert j["paused"] is False
    assert j["alert_webhook"] is None
    assert j["created_at"] == j["updated_at"]
    # next_fire_at: the first fire of the schedule after the creation.
    assert j["next_fire_at"] == cron_next(BASE["schedule"], frm=j["created_at"], count=1)[0]
    now = dt.datetime.now(dt.timezone.utc)
    assert abs((parse_time(j["created_at"]) - now).total_seconds()) < 60
    # the Location answers with the same job
    loc = urllib.parse.urlparse(r.headers["Location"]).path
    g = call(server, "GET", loc)
    assert g.status == 200 and g.json() == j


def test_next_fire_at_follows_schedule_and_timezone(server):
    j = create(server, schedule="0 9 * * MON-FRI", timezone="America/New_York")
    assert j["timezone"] == "America/New_York"
    assert j["next_fire_at"] == cron_next("0 9 * * MON-FRI", frm=j["created_at"],
                                          tz="America/New_York", count=1)[0]
    # 09:00 in New York is 13:00 or 14:00 UTC
    assert parse_time(j["next_fire_at"]).hour in (13, 14)
    j = create(server, schedule="*/10 * * * * *")  # six fields: seconds first
    nxt = ms(j["next_fire_at"])
    assert nxt % 10000 == 0 and 0 < nxt - ms(j["created_at"]) <= 10000


def test_name_is_generated_when_omitted(server):
    a = create(server)
    b = create(server)
    for j in (a, b):
        assert NAME_RE.match(j["name"]) and not UUID_RE.match(j["name"]), j["name"]
    assert a["name"] != b["name"]
    r = call(server, "GET", f"{JOBS}/{urllib.parse.quote(a['name'])}")
    assert r.status == 200 and r.json()["id"] == a["id"]


def test_every_field_is_stored_and_answered(server):
    doc = {
        "name": "team.svc-1_prod", "schedule": "0 30 4 1 1 *", "timezone": "Europe/Paris",
        "type": "ATMOST_ONCE", "api": "https://example.com/run?x=1", "method": "PUT",
        "headers": {"X-Token": "abc", "Content-Type": "text/plain"}, "body": "hello",
        "max_retries": 0, "retry_backoff_ms": 5, "retry_backoff_max_ms": 10,
        "timeout_ms": 1, "overlap": "forbid", "misfire": "run_all", "misfire_grace_ms": 0,
        "dst_gap": "skip", "dst_overlap": "both", "paused": False,
        "alert_webhook": "http://127.0.0.1:9/alert", "alert_after_failures": 3,
        "alert_if_no_success_for": "2h",
    }
    r = call(server, "POST", JOBS, doc)
    assert r.status == 201, r.body
    j = r.json()
    check_job(j)
    for k, v in doc.items():
        assert j[k] == v, (k, j[k], v)
    assert call(server, "GET", f"{JOBS}/{j['id']}").json() == j
    for v in ("replace",):
        assert create(server, overlap=v)["overlap"] == v
    for v in ("skip", "run_once"):
        assert create(server, misfire=v)["misfire"] == v
    for v in ("auto", "shift"):
        assert create(server, dst_gap=v)["dst_gap"] == v
    for v in ("first", "last"):
        assert create(server, dst_overlap=v)["dst_overlap"] == v
    assert create(server, name="x" * 200)["name"] == "x" * 200


def test_seed_http_document_is_accepted_as_is(server):
    r = call(server, "POST", JOBS, SEED_HTTP)
    assert r.status == 201, r.body
    j = r.json()
    check_job(j)
    assert j["schedule"] == SEED_HTTP["schedule"]
    assert j["api"] == SEED_HTTP["api"]
    assert j["type"] == "ATLEAST_ONCE"
    assert j["next_fire_at"] == cron_next(SEED_HTTP["schedule"], frm=j["created_at"],
                                          count=1)[0]
    assert parse_time(j["next_fire_at"]).second == 31


def test_seed_command_document_is_accepted_with_allow_commands(start_server):
    s = start_server(args=["--allow-commands"])
    r = call(s, "POST", JOBS, SEED_COMMAND)
    assert r.status == 201, r.body
    j = r.json()
    check_job(j)
    for k, v in SEED_COMMAND.items():
        assert j[k] == v, (k, j[k], v)
    assert r.headers["Location"].endswith(f"{JOBS}/{j['id']}")
    assert call(s, "GET", f"{JOBS}/backup").json() == j


def test_command_job_refused_without_allow_commands(server):
    before = stored(server)
    r = call(server, "POST", JOBS, SEED_COMMAND)
    assert 400 <= r.status < 500, (r.status, r.body)
    e = assert_error(r, r.status, {"command"})
    assert "allow-commands" in e["message"] or "disabled" in e["message"], e
    assert stored(server) == before


def test_json_content_type_with_charset_is_accepted(server):
    r = call(server, "POST", JOBS, json.dumps(BASE),
             headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status == 201, r.body


def test_text_round_trips_as_utf8(server):
    j = create(server, body="h\u00e9llo \u2713 \U0001F600 \"quoted\" \\ end",
               headers={"X-Note": "caf\u00e9"})
    got = call(server, "GET", f"{JOBS}/{j['id']}").json()
    assert got["body"] == "h\u00e9llo \u2713 \U0001F600 \"quoted\" \\ end"
    assert got["headers"] == {"X-Note": "caf\u00e9"}


def test_concurrent_creates_of_one_name_give_one_job(server):
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        rs = list(pool.map(lambda _: call(server, "POST", JOBS, dict(BASE, name="race")),
                           range(8)))
    assert sorted(r.status for r in rs) == [201] + [409] * 7, [r.status for r in rs]
    r = call(server, "GET", q(JOBS, name_prefix="race"))
    assert len(r.json()["items"]) == 1


def test_many_concurrent_creates_each_get_their_own_answer(server):
    """Creations arriving together are written together (store/group.c):
    each still gets its own answer, and a refused one costs no other."""
    import concurrent.futures
    docs = []
    for i in range(100):
        docs += [dict(BASE, name=f"crowd-{i}", max_retries=i % 7)] * 2  # every name twice
        if i % 10 == 0:
            docs.append(dict(BASE, name=f"crowd-bad-{i}", schedule="61 * * * *"))  # a 400
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        rs = list(pool.map(lambda d: (d, call(server, "POST", JOBS, d)), docs))
    created = {}
    for d, r in rs:
        if d["name"].startswith("crowd-bad-"):
            assert_error(r, 400, CRON_FIELDS)
        elif r.status == 201:
            assert d["name"] not in created, d["name"]
            created[d["name"]] = r.json()
        else:
            assert_error(r, 409, {"name"})
    assert sorted(created) == sorted(f"crowd-{i}" for i in range(100))
    for name, job in created.items():
        got = call(server, "GET", f"{JOBS}/{job['id']}")
        assert got.status == 200 and got.json() == job
        assert job["max_retries"] == int(name.split("-")[1]) % 7
    listed, _ = all_pages(server, JOBS, 1000, name_prefix="crowd-")
    assert sorted(j["name"] for j in listed) == sorted(created)


@pytest.mark.parametrize("path", [f"{JOBS}/" + "a" * 5000, f"{JOBS}/a%00b", f"{JOBS}/a%2Fb",
                                  f"{JOBS}/%C3%A9", f"{EXECS}/" + "0" * 3000])
def test_odd_paths_are_answered_not_crashed(server, path):
    r = call(server, "GET", path)
    assert r.status in (400, 404, 414), (r.status, r.body)
    if r.status != 414:
        assert_error(r, r.status)
    assert call(server, "GET", "/healthz").status == 200


@pytest.mark.parametrize("method,path,status,field", [
    ("GET", f"{JOBS}/%ff%fe", 404, None),
    ("DELETE", f"{JOBS}/%ff", 404, None),
    ("POST", f"{JOBS}/%ff/trigger", 404, None),
    ("GET", f"{JOBS}/%ff/trigger", 405, None),
    ("GET", f"{EXECS}/%ff", 404, None),
    ("GET", "/nope%ff", 404, None),
    ("GET", f"{EXECS}?status=%ff", 400, "status"),
    ("GET", f"{EXECS}?since=%ff", 400, "since"),
    ("GET", f"{JOBS}?paused=%ff", 400, "paused"),
    ("GET", f"{PREVIEW}?schedule=*+*+*+*+*&timezone=%ff", 400, "timezone"),
    ("GET", f"{PREVIEW}?schedule=0+0+%ff+*+*", 400, "day-of-month"),
    ("GET", f"{PREVIEW}?schedule=*+*+*+*+*&dst_gap=%ff", 400, "dst_gap"),
], ids=lambda v: v.replace("/api/v1", "") if isinstance(v, str) else None)
def test_invalid_utf8_in_url_still_gets_a_json_error(server, method, path, status, field):
    """Every error is JSON, even when the input it quotes is not UTF-8."""
    r = call(server, method, path)
    assert_error(r, status, {field} if field else None)


@pytest.mark.parametrize("shift", [0, 1, 2, 3])
@pytest.mark.parametrize("changes,field", [
    (lambda p: {"api": p + "\u00e9" * 150}, "api"),
    (lambda p: {"schedule": "0 0 * * " + p + "\u00e9" * 300}, "day-of-week"),
    (lambda p: {"schedule": "0 0 " + p + "\u00e9" * 300 + " * *"}, "day-of-month"),
    (lambda p: {"headers": {p + "\u00e9" * 200: "v"}}, "headers"),
    (lambda p: {p + "\u00e9" * 300: 1}, None),
], ids=["api", "dow", "dom", "header-name", "unknown-field"])
def test_long_non_ascii_input_still_gets_a_json_error(server, changes, field, shift):
    """An error message or field that quotes (and shortens) the input stays
    valid UTF-8, so the error is still JSON and still names the field."""
    doc = apply(BASE, changes("x" * shift))
    before = stored(server)
    r = call(server, "POST", JOBS, doc)
    e = assert_error(r, 400)
    if field:
        assert field_ok(e.get("field"), {field}) or field in e["message"], e
    else:
        assert "field" in e, e  # the unknown field is named
    assert stored(server) == before


def test_duplicate_name_is_409(server):
    create(server, name="dup")
    before = stored(server)
    r = call(server, "POST", JOBS, dict(BASE, name="dup"))
    assert_error(r, 409)
    assert stored(server) == before


def test_create_survives_kill_9(start_server):
    s = start_server()
    made = [create(s, name=f"durable-{i}") for i in range(20)]
    ex = trigger(s, made[0]["id"])
    s.stop(signal.SIGKILL)
    s2 = start_server(db=s.db)
    for j in made:
        r = call(s2, "GET", f"{JOBS}/{j['id']}")
        assert r.status == 200, r.body
        assert r.json() == j
    r = call(s2, "GET", f"{EXECS}/{ex['id']}")
    assert r.status == 200 and r.json()["job_id"] == made[0]["id"]


# ---- list ------------------------------------------------------------------

def test_list_empty_and_default_limit_50(server):
    r = call(server, "GET", JOBS)
    assert r.status == 200
    assert r.json() == {"items": [], "next_cursor": None}
    made = {create(server)["id"] for _ in range(55)}
    r = call(server, "GET", JOBS)
    body = r.json()
    assert len(body["items"]) == 50 and body["next_cursor"]
    r2 = call(server, "GET", q(JOBS, cursor=body["next_cursor"]))
    body2 = r2.json()
    assert len(body2["items"]) == 5 and body2["next_cursor"] is None
    ids = [j["id"] for j in body["items"] + body2["items"]]
    assert len(ids) == len(set(ids)) and set(ids) == made
    for j in body["items"]:
        check_job(j)


@pytest.mark.parametrize("limit", [1, 3, 7, 10])
def test_list_pagination_no_duplicates_no_gaps(server, limit):
    made = [create(server)["id"] for _ in range(10)]
    items, sizes = all_pages(server, JOBS, limit)
    ids = [j["id"] for j in items]
    assert len(ids) == len(set(ids)), "duplicates across pages"
    assert set(ids) == set(made), "gaps across pages"
    assert all(n == limit for n in sizes[:-1])


def test_list_limit_bounds(server):
    create(server)
    r = call(server, "GET", q(JOBS, limit=1000))
    assert r.status == 200 and len(r.json()["items"]) == 1
    for bad in ("abc", "-1", "1.5"):
        assert_error(call(server, "GET", q(JOBS, limit=bad)), 400, {"limit"})
    r = call(server, "GET", q(JOBS, limit=1001))
    if r.status != 200:  # max 1000: either refused or capped
        assert_error(r, 400, {"limit"})


def test_list_pagination_is_stable_while_jobs_are_added(server):
    for _ in range(6):
        create(server)
    r = call(server, "GET", q(JOBS, limit=3))
    first = r.json()
    create(server)  # added between pages
    rest, _ = all_pages(server, JOBS, 3, cursor=first["next_cursor"])
    ids = [j["id"] for j in first["items"] + rest]
    assert len(ids) == len(set(ids)) == 7


def test_list_filter_paused(server):
    a = create(server)
    b = create(server)
    c = create(server, paused=True)
    assert call(server, "POST", f"{JOBS}/{b['id']}/pause").status == 200
    r = call(server, "GET", q(JOBS, paused="true"))
    assert r.status == 200
    assert {j["id"] for j in r.json()["items"]} == {b["id"], c["id"]}
    r = call(server, "GET", q(JOBS, paused="false"))
    assert {j["id"] for j in r.json()["items"]} == {a["id"]}
    items, _ = all_pages(server, JOBS, 1, paused="true")
    assert {j["id"] for j in items} == {b["id"], c["id"]}
    assert_error(call(server, "GET", q(JOBS, paused="maybe")), 400, {"paused"})


def test_list_filter_name_prefix_is_literal(server):
    names = ["a_b1", "axb2", "a.c", "abc", "a-d", "A_B3", "zz"]
    ids = {n: create(server, name=n)["id"] for n in names}

    def names_for(prefix):
        r = call(server, "GET", q(JOBS, name_prefix=prefix))
        assert r.status == 200, r.body
        return {j["name"] for j in r.json()["items"]}

    assert names_for("a_") == {"a_b1"}  # `_` is not "any character"
    assert names_for("a%") == set()  # `%` is not "anything"
    assert names_for("%") == set()
    assert names_for("_") == set()
    assert names_for("a.") == {"a.c"}
    assert names_for("ab") == {"abc"}
    assert names_for("a") == {"a_b1", "axb2", "a.c", "abc", "a-d"}
    assert names_for("zz") == {"zz"}
    assert names_for("nomatch") == set()
    items, _ = all_pages(server, JOBS, 2, name_prefix="a")
    assert sorted(j["name"] for j in items) == sorted(["a_b1", "axb2", "a.c", "abc", "a-d"])
    assert len(ids) == len(names)


def test_list_bad_cursor_and_job_id_are_400(server):
    create(server)
    assert_error(call(server, "GET", q(JOBS, cursor="garbage")), 400, {"cursor"})
    assert_error(call(server, "GET", q(EXECS, cursor="garbage")), 400, {"cursor"})
    assert_error(call(server, "GET", q(EXECS, job_id="garbage")), 400, {"job_id"})


def test_cursor_of_a_deleted_job_still_pages_on(server):
    made = [create(server)["id"] for _ in range(6)]
    first = call(server, "GET", q(JOBS, limit=3)).json()
    assert call(server, "DELETE", f"{JOBS}/{first['items'][-1]['id']}").status == 204
    rest, _ = all_pages(server, JOBS, 3, cursor=first["next_cursor"])
    ids = [j["id"] for j in first["items"] + rest]
    assert len(ids) == len(set(ids)) and set(ids) == set(made)


# ---- get -------------------------------------------------------------------

def test_get_by_id_and_by_name(server):
    j = create(server, name="nightly.report")
    r = call(server, "GET", f"{JOBS}/{j['id']}")
    assert r.status == 200 and r.json() == j
    r = call(server, "GET", f"{JOBS}/nightly.report")
    assert r.status == 200 and r.json() == j


@pytest.mark.parametrize("ref", ["no-such-job", "01920000-0000-7000-8000-000000000000"])
def test_get_unknown_is_404(server, ref):
    create(server)
    assert_error(call(server, "GET", f"{JOBS}/{ref}"), 404, code="not_found")


# ---- PUT -------------------------------------------------------------------

FULL = {
    "name": "replace-me", "schedule": "0 3 1 1 *", "timezone": "Europe/Paris",
    "type": "ATMOST_ONCE", "api": "https://example.com/a", "method": "PUT",
    "headers": {"X-A": "1"}, "body": "b", "max_retries": 9, "retry_backoff_ms": 7,
    "retry_backoff_max_ms": 70, "timeout_ms": 5000, "overlap": "forbid", "misfire": "skip",
    "misfire_grace_ms": 5, "dst_gap": "skip", "dst_overlap": "both", "paused": True,
    "alert_webhook": "http://127.0.0.1:9/alert", "alert_after_failures": 2,
    "alert_if_no_success_for": "2h",
}


def test_put_full_replace_resets_missing_fields_to_defaults(server):
    old = create(server, FULL)
    assert old["paused"] is True and old["next_fire_at"] is None
    time.sleep(0.01)
    new_doc = {"name": "replace-me", "schedule": "0 0 1 6 *", "api": "http://127.0.0.1:9/new"}
    r = call(server, "PUT", f"{JOBS}/{old['id']}", new_doc)
    assert r.status == 200, r.body
    j = r.json()
    check_job(j)
    assert j["id"] == old["id"]
    assert j["created_at"] == old["created_at"]
    assert ms(j["updated_at"]) > ms(old["updated_at"])
    assert j["name"] == "replace-me"
    assert j["schedule"] == "0 0 1 6 *"
    assert j["api"] == "http://127.0.0.1:9/new"
    for k, v in DEFAULTS.items():
        assert j[k] == v, (k, j[k], v)
    assert j.get("method", "POST") == "POST"
    assert j.get("headers") in (None, {})
    assert j.get("body") is None
    assert j["alert_webhook"] is None
    # the new schedule recomputes next_fire_at
    assert j["next_fire_at"] == cron_next("0 0 1 6 *", frm=j["updated_at"], count=1)[0]
    assert call(server, "GET", f"{JOBS}/{old['id']}").json() == j


def test_put_new_schedule_recomputes_next_fire_at(server):
    old = create(server)
    r = call(server, "PUT", f"{JOBS}/{old['id']}", dict(BASE, schedule="0 12 * * *",
                                                        name=old["name"]))
    j = r.json()
    assert r.status == 200
    assert j["next_fire_at"] != old["next_fire_at"]
    assert j["next_fire_at"] == cron_next("0 12 * * *", frm=j["updated_at"], count=1)[0]


def test_put_with_matching_id_is_accepted(server):
    old = create(server)
    doc = dict(old)  # the response form, sent back as it is
    doc["max_retries"] = 5
    r = call(server, "PUT", f"{JOBS}/{old['id']}", doc)
    assert r.status == 200, r.body
    assert r.json()["max_retries"] == 5


def test_put_id_mismatch_is_400(server):
    a = create(server)
    b = create(server)
    before = stored(server)
    r = call(server, "PUT", f"{JOBS}/{a['id']}", dict(BASE, id=b["id"]))
    assert_error(r, 400, {"id"})
    assert stored(server) == before


def test_put_unknown_is_404(server):
    r = call(server, "PUT", f"{JOBS}/01920000-0000-7000-8000-000000000000", BASE)
    assert_error(r, 404)


def test_put_and_patch_to_a_taken_name_is_409(server):
    create(server, name="taken")
    j = create(server, name="mine")
    before = stored(server)
    assert_error(call(server, "PUT", f"{JOBS}/{j['id']}", dict(BASE, name="taken")), 409)
    assert_error(call(server, "PATCH", f"{JOBS}/{j['id']}", {"name": "taken"}), 409)
    assert stored(server) == before


# ---- PATCH -----------------------------------------------------------------

def test_patch_changes_only_given_fields(server):
    old = create(server, FULL)
    time.sleep(0.01)
    r = call(server, "PATCH", f"{JOBS}/{old['id']}", {"max_retries": 4, "overlap": "replace"})
    assert r.status == 200, r.body
    j = r.json()
    assert j["max_retries"] == 4 and j["overlap"] == "replace"
    assert ms(j["updated_at"]) > ms(old["updated_at"])
    for k in set(old) | set(j):
        if k not in ("max_retries", "overlap", "updated_at"):
            assert j.get(k) == old.get(k), (k, j.get(k), old.get(k))
    assert call(server, "GET", f"{JOBS}/{old['id']}").json() == j


def test_patch_schedule_recomputes_next_fire_at(server):
    old = create(server)
    r = call(server, "PATCH", f"{JOBS}/{old['id']}", {"schedule": "0 0 1 6 *"})
    assert r.status == 200, r.body
    j = r.json()
    assert j["next_fire_at"] == cron_next("0 0 1 6 *", frm=j["updated_at"], count=1)[0]
    r = call(server, "PATCH", f"{JOBS}/{old['id']}", {"timezone": "Asia/Tokyo"})
    j = r.json()
    assert j["next_fire_at"] == cron_next("0 0 1 6 *", frm=j["updated_at"], tz="Asia/Tokyo",
                                          count=1)[0]


def test_patch_unknown_is_404(server):
    r = call(server, "PATCH", f"{JOBS}/no-such-job", {"max_retries": 1})
    assert_error(r, 404)


# ---- DELETE ----------------------------------------------------------------

def test_delete_204_then_404_and_executions_gone(server):
    j = create(server)
    other = create(server)
    e1 = trigger(server, j["id"])
    e2 = trigger(server, j["id"])
    keep = trigger(server, other["id"])
    r = call(server, "DELETE", f"{JOBS}/{j['id']}")
    assert r.status == 204
    assert r.body == b""
    assert_error(call(server, "GET", f"{JOBS}/{j['id']}"), 404)
    assert_error(call(server, "DELETE", f"{JOBS}/{j['id']}"), 404)
    assert_error(call(server, "GET", f"{JOBS}/{j['id']}/executions"), 404)
    for e in (e1, e2):
        assert_error(call(server, "GET", f"{EXECS}/{e['id']}"), 404)
    r = call(server, "GET", q(EXECS, job_id=j["id"]))
    assert r.status == 200 and r.json()["items"] == []
    r = call(server, "GET", EXECS)
    assert [e["id"] for e in r.json()["items"]] == [keep["id"]]
    assert call(server, "GET", f"{JOBS}/{other['id']}").status == 200
    # the name is free again
    assert create(server, name=j["name"])["name"] == j["name"]


# ---- trigger, pause, resume ------------------------------------------------

def test_trigger_202_creates_pending_manual_execution(server):
    j = create(server)
    before = dt.datetime.now(dt.timezone.utc)
    r = call(server, "POST", f"{JOBS}/{j['id']}/trigger")
    assert r.status == 202, r.body
    e = r.json()
    check_exec(e)
    assert e["job_id"] == j["id"]
    assert e["trigger"] == "manual"
    assert e["status"] == "pending"
    # runs now, whatever the schedule (which is once a year)
    assert abs((parse_time(e["scheduled_at"]) - before).total_seconds()) < 60
    r = call(server, "GET", f"{EXECS}/{e['id']}")
    assert r.status == 200
    got = r.json()
    check_exec(got)
    for k in ("id", "job_id", "trigger", "scheduled_at"):
        assert got[k] == e[k], k
    r = call(server, "GET", f"{JOBS}/{j['id']}/executions")
    assert [x["id"] for x in r.json()["items"]] == [e["id"]]


def test_trigger_works_on_paused_job(server):
    j = create(server, paused=True)
    e = trigger(server, j["id"])
    assert e["trigger"] == "manual" and e["status"] == "pending"
    assert call(server, "GET", f"{JOBS}/{j['id']}").json()["paused"] is True


def test_trigger_accepts_empty_json_body(server):
    j = create(server)
    r = call(server, "POST", f"{JOBS}/{j['id']}/trigger", b"",
             headers={"Content-Type": "application/json"})
    assert r.status == 202, r.body


@pytest.mark.parametrize("action", ["trigger", "pause", "resume"])
def test_actions_on_unknown_job_are_404(server, action):
    before = stored(server)
    r = call(server, "POST", f"{JOBS}/01920000-0000-7000-8000-000000000000/{action}")
    assert_error(r, 404)
    assert stored(server) == before


def test_pause_and_resume(server):
    j = create(server)
    assert j["next_fire_at"] is not None
    r = call(server, "POST", f"{JOBS}/{j['id']}/pause")
    assert r.status == 200, r.body
    p = r.json()
    check_job(p)
    assert p["paused"] is True and p["next_fire_at"] is None
    assert call(server, "GET", f"{JOBS}/{j['id']}").json() == p
    r = call(server, "POST", f"{JOBS}/{j['id']}/pause")  # again: still paused
    assert r.status == 200 and r.json()["paused"] is True
    r = call(server, "POST", f"{JOBS}/{j['id']}/resume")
    assert r.status == 200, r.body
    u = r.json()
    assert u["paused"] is False
    assert u["next_fire_at"] == cron_next(j["schedule"], frm=u["updated_at"], count=1)[0]
    assert call(server, "GET", f"{JOBS}/{j['id']}").json() == u
    r = call(server, "POST", f"{JOBS}/{j['id']}/resume")
    assert r.status == 200 and r.json()["paused"] is False


def test_created_paused_has_no_next_fire(server):
    j = create(server, paused=True)
    assert j["paused"] is True and j["next_fire_at"] is None


# ---- executions ------------------------------------------------------------

def test_job_executions_newest_first_paginated(server):
    j = create(server)
    made = [trigger(server, j["id"])["id"] for _ in range(7)]
    r = call(server, "GET", f"{JOBS}/{j['id']}/executions")
    assert r.status == 200
    body = r.json()
    assert set(body) == {"items", "next_cursor"}
    assert [e["id"] for e in body["items"]] == made[::-1]
    assert body["next_cursor"] is None
    for e in body["items"]:
        check_exec(e)
        assert "output" not in e  # only the single-execution view adds output
    items, sizes = all_pages(server, f"{JOBS}/{j['id']}/executions", 3)
    assert [e["id"] for e in items] == made[::-1]
    assert sizes == [3, 3, 1]
    # by name too: {id-or-name}
    r = call(server, "GET", f"{JOBS}/{j['name']}/executions")
    assert r.status == 200 and [e["id"] for e in r.json()["items"]] == made[::-1]


def test_job_executions_of_unknown_job_404(server):
    assert_error(call(server, "GET", f"{JOBS}/nope/executions"), 404)


def test_executions_status_filter(server, start_server):
    j = create(server)
    k = create(server)
    ids = [trigger(server, x["id"])["id"] for x in (j, k, j, k, j, k)]
    statuses = ["succeeded", "failed", "failed", "timed_out", "cancelled", "succeeded"]
    s = with_db(start_server, server, *[
        ("UPDATE executions SET status = ? WHERE id = ?", (st, i))
        for st, i in zip(statuses, ids)])
    for st in sorted(set(statuses)):
        want = [i for i, x in zip(ids, statuses) if x == st][::-1]
        r = call(s, "GET", q(EXECS, status=st))
        assert r.status == 200, r.body
        assert [e["id"] for e in r.json()["items"]] == want, st
        assert all(e["status"] == st for e in r.json()["items"])
        want_j = [i for i, x, o in zip(ids, statuses, "jkjkjk") if x == st and o == "j"][::-1]
        r = call(s, "GET", q(f"{JOBS}/{j['id']}/executions", status=st))
        assert [e["id"] for e in r.json()["items"]] == want_j, st
    r = call(s, "GET", q(EXECS, status="pending"))
    assert r.json()["items"] == []
    items, _ = all_pages(s, EXECS, 1, status="failed")
    assert [e["id"] for e in items] == [ids[2], ids[1]]
    assert_error(call(s, "GET", q(EXECS, status="exploded")), 400, {"status"})
    assert_error(call(s, "GET", q(f"{JOBS}/{j['id']}/executions", status="exploded")), 400,
                 {"status"})


def test_executions_across_jobs_filters_and_pagination(server):
    j = create(server)
    k = create(server)
    ids, owners = [], []
    for x in (j, k, j, j, k):
        ids.append(trigger(server, x["id"])["id"])
        owners.append(x["id"])
    r = call(server, "GET", EXECS)
    assert r.status == 200
    body = r.json()
    assert set(body) == {"items", "next_cursor"}
    assert [e["id"] for e in body["items"]] == ids[::-1]  # newest first, across jobs
    for e in body["items"]:
        check_exec(e)
    r = call(server, "GET", q(EXECS, job_id=k["id"]))
    assert [e["id"] for e in r.json()["items"]] == [i for i, o in zip(ids, owners)
                                                    if o == k["id"]][::-1]
    for limit in (1, 2, 4):
        items, sizes = all_pages(server, EXECS, limit)
        assert [e["id"] for e in items] == ids[::-1], limit
        assert all(n == limit for n in sizes[:-1])
    items, _ = all_pages(server, EXECS, 2, job_id=j["id"])
    assert [e["id"] for e in items] == [i for i, o in zip(ids, owners) if o == j["id"]][::-1]
    r = call(server, "GET", q(EXECS, job_id="01920000-0000-7000-8000-000000000000"))
    assert r.status == 200 and r.json()["items"] == []


def test_executions_since_filter(server):
    j = create(server)
    first = trigger(server, j["id"])
    time.sleep(0.05)
    second = trigger(server, j["id"])
    time.sleep(0.05)
    third = trigger(server, j["id"])
    mid = fmt_ms((ms(first["scheduled_at"]) + ms(second["scheduled_at"])) // 2)
    assert ms(first["scheduled_at"]) < ms(mid) < ms(second["scheduled_at"])
    r = call(server, "GET", q(EXECS, since=mid))
    assert r.status == 200, r.body
    assert [e["id"] for e in r.json()["items"]] == [third["id"], second["id"]]
    r = call(server, "GET", q(EXECS, since="2000-01-01T00:00:00.000Z"))
    assert len(r.json()["items"]) == 3
    r = call(server, "GET", q(EXECS, since="2000-01-01T00:00:00Z"))  # RFC 3339, no fraction
    assert r.status == 200 and len(r.json()["items"]) == 3
    r = call(server, "GET", q(EXECS, since="2999-01-01T00:00:00.000Z"))
    assert r.json()["items"] == []
    items, _ = all_pages(server, EXECS, 1, since=mid, job_id=j["id"])
    assert [e["id"] for e in items] == [third["id"], second["id"]]
    assert_error(call(server, "GET", q(EXECS, since="yesterday")), 400, {"since"})


def test_execution_get_with_output_and_attempts(server, start_server):
    j = create(server)
    e = trigger(server, j["id"])
    s = with_db(start_server, server, (
        "UPDATE executions SET status = 'succeeded', started_at = scheduled_at + 1000, "
        "finished_at = scheduled_at + 251000, duration_ms = 250, drift_ms = 1, "
        "http_status = 200, output = ? WHERE id = ?", ("hello\nworld\n", e["id"])))
    r = call(s, "GET", f"{EXECS}/{e['id']}")
    assert r.status == 200, r.body
    got = r.json()
    check_exec(got)
    assert got["id"] == e["id"] and got["job_id"] == j["id"]
    assert got["status"] == "succeeded"
    assert got["http_status"] == 200
    assert got["duration_ms"] == 250
    assert TIME_RE.match(got["started_at"]) and TIME_RE.match(got["finished_at"])
    assert got["output"] == "hello\nworld\n"
    if "attempts" not in got:
        pytest.xfail("attempts list not built yet")
    assert isinstance(got["attempts"], list)


def test_execution_get_pending_has_output_key(server):
    j = create(server)
    e = trigger(server, j["id"])
    got = call(server, "GET", f"{EXECS}/{e['id']}").json()
    check_exec(got)
    assert "output" in got  # null or text, whatever the engine did meanwhile
    if "attempts" not in got:
        pytest.xfail("attempts list not built yet")
    assert isinstance(got["attempts"], list)


def wait_final(s, exec_id, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        e = call(s, "GET", f"{EXECS}/{exec_id}").json()
        if e["status"] not in ("pending", "running") and e.get("finished_at"):
            return e
        time.sleep(0.05)
    pytest.fail(f"execution {exec_id} did not finish: {e}")


def check_attempts(e, n):
    assert isinstance(e["attempts"], list), e
    assert len(e["attempts"]) == n, e["attempts"]
    for i, a in enumerate(e["attempts"]):
        assert isinstance(a, dict) and {"attempt", "status"} <= set(a), a
        assert a["status"] in EXEC_STATUSES, a
    assert [a["attempt"] for a in e["attempts"]] == sorted(a["attempt"] for a in e["attempts"])


def test_executed_command_shows_output_and_every_attempt(start_server):
    s = start_server(args=["--allow-commands"])
    ok = create(s, CMD_BASE, command="/bin/sh", args=["-c", "echo hello; echo world"])
    bad = create(s, CMD_BASE, command="/bin/sh", args=["-c", "echo oops; exit 3"],
                 max_retries=1, retry_backoff_ms=1, retry_backoff_max_ms=1)
    e_ok = wait_final(s, trigger(s, ok["id"])["id"])
    assert e_ok["status"] == "succeeded" and e_ok["exit_code"] == 0, e_ok
    assert "hello\nworld" in e_ok["output"], e_ok
    check_attempts(e_ok, 1)
    e_bad = wait_final(s, trigger(s, bad["id"])["id"])
    assert e_bad["status"] == "failed" and e_bad["exit_code"] == 3, e_bad
    assert "oops" in e_bad["output"], e_bad
    check_attempts(e_bad, 2)  # the first try and one retry
    # the list view has no output
    items = call(s, "GET", q(EXECS, job_id=bad["id"])).json()["items"]
    assert [x["id"] for x in items] == [e_bad["id"]] and "output" not in items[0]


@pytest.mark.parametrize("ref", ["01920000-0000-7000-8000-000000000000", "not-an-id"])
def test_execution_get_unknown_404(server, ref):
    assert_error(call(server, "GET", f"{EXECS}/{ref}"), 404)


# ---- schedule preview ------------------------------------------------------

@pytest.mark.parametrize("schedule,tz,frm,count", [
    ("0 9 * * MON-FRI", "America/New_York", "2026-03-01T00:00:00Z", 10),
    ("30 2 * * *", "Europe/Paris", "2026-03-27T00:00:00Z", 5),   # spring-forward gap
    ("30 2 * * *", "Europe/Paris", "2026-10-23T00:00:00Z", 5),   # fall-back overlap
    ("31 10-15 1 * * MON-FRI", None, "2026-11-22T18:00:00Z", 20),
    ("*/15 * * * *", "Asia/Kolkata", "2026-11-22T18:00:00.500Z", 7),
    ("0 0 29 2 *", None, "2026-01-01T00:00:00Z", 3),
])
def test_preview_equals_cron_next(server, schedule, tz, frm, count):
    params = {"schedule": schedule, "from": frm, "count": count}
    if tz:
        params["timezone"] = tz
    r = call(server, "GET", q(PREVIEW, **params))
    assert r.status == 200, r.body
    body = r.json()
    assert body["schedule"] == schedule
    assert body["timezone"] == (tz or "UTC")
    assert body["fires"] == cron_next(schedule, frm=frm, tz=tz, count=count)
    assert len(body["fires"]) == count
    for f in body["fires"]:
        assert TIME_RE.match(f)


def test_preview_defaults_count_5_from_now(server):
    r = call(server, "GET", q(PREVIEW, schedule="0 0 1 1 *"))
    assert r.status == 200, r.body
    body = r.json()
    assert body["timezone"] == "UTC"
    assert body["fires"] == cron_next("0 0 1 1 *", count=5)
    r = call(server, "GET", q(PREVIEW, schedule="* * * * *"))
    fires = r.json()["fires"]
    assert len(fires) == 5
    now = dt.datetime.now(dt.timezone.utc)
    assert now - dt.timedelta(seconds=5) < parse_time(fires[0]) <= now + dt.timedelta(minutes=1)


def test_preview_count_max_1000(server):
    r = call(server, "GET", q(PREVIEW, schedule="* * * * *", count=1000,
                              **{"from": "2026-01-01T00:00:00Z"}))
    assert r.status == 200
    fires = r.json()["fires"]
    assert len(fires) == 1000 and len(set(fires)) == 1000
    assert fires == cron_next("* * * * *", frm="2026-01-01T00:00:00Z", count=1000)
    for bad in (1001, 0, -1, "x"):
        assert_error(call(server, "GET", q(PREVIEW, schedule="* * * * *", count=bad)), 400,
                     {"count"})


@pytest.mark.parametrize("schedule,cron_field", [
    ("0 0 32 * *", "day-of-month"),
    ("61 * * * *", "minute"),
    ("0 25 * * *", "hour"),
    ("0 0 * 13 *", "month"),
    ("0 0 * * FUNDAY", "day-of-week"),
])
def test_preview_invalid_schedule_names_cron_field(server, schedule, cron_field):
    r = call(server, "GET", q(PREVIEW, schedule=schedule))
    e = assert_error(r, 400)
    assert cron_field in (e.get("field", "") + " " + e["message"]), e


def test_preview_invalid_schedule_timezone_and_missing(server):
    assert_error(call(server, "GET", q(PREVIEW, schedule="every day")), 400, CRON_FIELDS)
    assert_error(call(server, "GET", q(PREVIEW, schedule="* * * * *", timezone="Mars/Olympus")),
                 400, {"timezone"})
    assert_error(call(server, "GET", PREVIEW), 400, {"schedule"})
    assert_error(call(server, "GET", q(PREVIEW, schedule="* * * * *", **{"from": "soon"})), 400,
                 {"from"})


# ---- validation: every field -----------------------------------------------

DROP = object()  # remove the key from the document

INVALID = [
    # (test id, changes to a valid document, fields the answer may name)
    ("schedule-missing", {"schedule": DROP}, {"schedule"}),
    ("schedule-garbage", {"schedule": "every day"}, CRON_FIELDS),
    ("schedule-dom-32", {"schedule": "0 0 32 * *"}, {"schedule", "day-of-month"}),
    ("schedule-not-string", {"schedule": 5}, {"schedule"}),
    ("timezone-unknown", {"timezone": "Mars/Olympus"}, {"timezone"}),
    ("timezone-empty", {"timezone": ""}, {"timezone"}),
    ("timezone-number", {"timezone": 1}, {"timezone"}),
    ("type-unknown", {"type": "EXACTLY_ONCE"}, {"type"}),
    ("overlap-unknown", {"overlap": "sometimes"}, {"overlap"}),
    ("misfire-unknown", {"misfire": "never"}, {"misfire"}),
    ("dst_gap-unknown", {"dst_gap": "jump"}, {"dst_gap"}),
    ("dst_overlap-unknown", {"dst_overlap": "twice"}, {"dst_overlap"}),
    ("max_retries-negative", {"max_retries": -1}, {"max_retries"}),
    ("max_retries-too-large", {"max_retries": 1000000}, {"max_retries"}),
    ("max_retries-float", {"max_retries": 3.5}, {"max_retries"}),
    ("max_retries-float-integral", {"max_retries": 3.0}, {"max_retries"}),
    ("max_retries-string", {"max_retries": "3"}, {"max_retries"}),
    ("max_retries-bool", {"max_retries": True}, {"max_retries"}),
    ("timeout_ms-zero", {"timeout_ms": 0}, {"timeout_ms"}),
    ("timeout_ms-negative", {"timeout_ms": -5}, {"timeout_ms"}),
    ("timeout_ms-huge", {"timeout_ms": 10 ** 15}, {"timeout_ms"}),
    ("retry_backoff_ms-negative", {"retry_backoff_ms": -1}, {"retry_backoff_ms"}),
    ("backoff-max-below-first", {"retry_backoff_ms": 5000, "retry_backoff_max_ms": 1000},
     {"retry_backoff_max_ms", "retry_backoff_ms"}),
    ("backoff-max-below-default-first", {"retry_backoff_max_ms": 100},
     {"retry_backoff_max_ms", "retry_backoff_ms"}),
    ("misfire_grace_ms-negative", {"misfire_grace_ms": -1}, {"misfire_grace_ms"}),
    ("paused-string", {"paused": "yes"}, {"paused"}),
    ("alert_after_failures-negative", {"alert_after_failures": -1}, {"alert_after_failures"}),
    ("alert_if_no_success_for-bad", {"alert_if_no_success_for": "forever"},
     {"alert_if_no_success_for"}),
    ("alert_if_no_success_for-number", {"alert_if_no_success_for": 7200},
     {"alert_if_no_success_for"}),
    ("alert_webhook-bad", {"alert_webhook": "not a url"}, {"alert_webhook"}),
    ("alert_webhook-ftp", {"alert_webhook": "ftp://example.com/x"}, {"alert_webhook"}),
    ("name-too-long", {"name": "x" * 201}, {"name"}),
    ("name-empty", {"name": ""}, {"name"}),
    ("name-space", {"name": "has space"}, {"name"}),
    ("name-slash", {"name": "a/b"}, {"name"}),
    ("name-non-ascii", {"name": "na\u00efve"}, {"name"}),
    ("name-colon", {"name": "a:b"}, {"name"}),
    ("name-uuid", {"name": "0190f5e2-7b1c-7def-8abc-0123456789ab"}, {"name"}),
    ("name-uuid-upper", {"name": "0190F5E2-7B1C-7DEF-8ABC-0123456789AB"}, {"name"}),
    ("name-uuid-v4", {"name": "123e4567-e89b-42d3-a456-426614174000"}, {"name"}),
    ("name-number", {"name": 12}, {"name"}),
    ("api-and-command", {"command": "/bin/true"}, {"api", "command"}),
    ("no-target", {"api": DROP}, {"api", "command"}),
    ("api-not-url", {"api": "not a url"}, {"api"}),
    ("api-ftp", {"api": "ftp://example.com/x"}, {"api"}),
    ("api-no-host", {"api": "http://"}, {"api"}),
    ("api-number", {"api": 5}, {"api"}),
    ("api-too-long", {"api": "http://example.com/" + "a" * 100000}, {"api"}),
    ("method-unknown", {"method": "FETCH"}, {"method"}),
    ("headers-string", {"headers": "X-A: 1"}, {"headers"}),
    ("headers-array", {"headers": ["X-A: 1"]}, {"headers"}),
    ("header-value-number", {"headers": {"X-A": 1}}, {"headers"}),
    ("header-value-crlf", {"headers": {"X-A": "a\r\nEvil: 1"}}, {"headers"}),
    ("header-value-lf", {"headers": {"X-A": "a\nb"}}, {"headers"}),
    ("header-value-cr", {"headers": {"X-A": "a\rb"}}, {"headers"}),
    ("header-name-space", {"headers": {"X A": "1"}}, {"headers"}),
    ("header-name-crlf", {"headers": {"X\r\nA": "1"}}, {"headers"}),
    ("header-value-too-long", {"headers": {"X-A": "v" * 100000}}, {"headers"}),
    ("header-name-too-long", {"headers": {"X" * 10000: "v"}}, {"headers"}),
    ("headers-too-many", {"headers": {f"X-{i}": "v" for i in range(1000)}}, {"headers"}),
    ("body-number", {"body": 5}, {"body"}),
    ("http-job-with-args", {"args": ["x"]}, {"args"}),
    ("unknown-field", {"foo": 1}, {"foo"}),
    ("unknown-field-case", {"Schedule": "* * * * *"}, {"Schedule"}),
    ("unknown-field-jobId", {"jobId": "x"}, {"jobId"}),
]

INVALID_COMMAND = [
    ("args-string", {"args": "--full"}, {"args"}),
    ("args-numbers", {"args": [1, 2]}, {"args"}),
    ("args-null-item", {"args": ["a", None]}, {"args"}),
    ("args-object", {"args": {"a": "b"}}, {"args"}),
    ("args-too-many", {"args": ["a"] * 100000}, {"args"}),
    ("env-array", {"env": ["X=1"]}, {"env"}),
    ("env-name-digit", {"env": {"1X": "a"}}, {"env"}),
    ("env-name-dash", {"env": {"A-B": "a"}}, {"env"}),
    ("env-name-equals", {"env": {"A=B": "a"}}, {"env"}),
    ("env-name-empty", {"env": {"": "a"}}, {"env"}),
    ("env-value-number", {"env": {"A": 1}}, {"env"}),
    ("command-empty", {"command": ""}, {"command"}),
    ("command-number", {"command": 5}, {"command"}),
    ("command-job-with-headers", {"headers": {"X-A": "1"}}, {"headers"}),
    ("command-and-api", {"api": "http://example.com/"}, {"api", "command"}),
]


def apply(doc, changes):
    d = dict(doc)
    for k, v in changes.items():
        if v is DROP:
            d.pop(k, None)
        else:
            d[k] = v
    return d


def cases(table):
    return [pytest.param(c, f, id=i) for i, c, f in table]


@pytest.fixture
def cmd_server(start_server):
    return start_server(args=["--allow-commands"])


@pytest.mark.parametrize("changes,fields", cases(INVALID))
def test_create_invalid_field_is_400_and_stores_nothing(cmd_server, changes, fields):
    s = cmd_server
    create(s, name="baseline")
    before = stored(s)
    r = call(s, "POST", JOBS, apply(BASE, changes))
    e = assert_error(r, 400, fields)
    if "schedule" in changes and changes["schedule"] == "0 0 32 * *":
        assert "day-of-month" in e.get("field", "") + " " + e["message"], e
    assert stored(s) == before
    assert call(s, "GET", "/healthz").status == 200


@pytest.mark.parametrize("changes,fields", cases(INVALID_COMMAND))
def test_create_invalid_command_field_is_400(cmd_server, changes, fields):
    s = cmd_server
    create(s, CMD_BASE, name="baseline")
    before = stored(s)
    r = call(s, "POST", JOBS, apply(CMD_BASE, changes))
    assert_error(r, 400, fields)
    assert stored(s) == before


@pytest.mark.parametrize("base,changes,fields",
                         [pytest.param(BASE, c, f, id=i) for i, c, f in INVALID] +
                         [pytest.param(CMD_BASE, c, f, id=i) for i, c, f in INVALID_COMMAND])
def test_put_invalid_field_is_400_and_changes_nothing(cmd_server, base, changes, fields):
    s = cmd_server
    j = create(s, base, name="victim")
    before = stored(s)
    r = call(s, "PUT", f"{JOBS}/{j['id']}", apply(dict(base, name="victim"), changes))
    assert_error(r, 400, fields)
    assert stored(s) == before


PATCHABLE = [c for c in INVALID if DROP not in c[1].values()]


@pytest.mark.parametrize("changes,fields", cases(PATCHABLE))
def test_patch_invalid_field_is_400_and_changes_nothing(cmd_server, changes, fields):
    s = cmd_server
    j = create(s, name="victim")
    before = stored(s)
    r = call(s, "PATCH", f"{JOBS}/{j['id']}", changes)
    assert_error(r, 400, fields)
    assert stored(s) == before


def test_limits_at_the_edge_are_accepted(cmd_server):
    s = cmd_server
    create(s, name="n" * 200)
    create(s, max_retries=0)
    create(s, headers={"X-A": "v" * 4096})
    create(s, CMD_BASE, args=["a"] * 100, env={"_A1": "x", "B": ""}, cwd="/tmp")
    create(s, alert_if_no_success_for="90m")


# ---- malformed bodies ------------------------------------------------------

DEEP = 100000
MALFORMED = [
    ("truncated", b'{"schedule": "0 0 1 1 *", "api": '),
    ("not-json", b"schedule=0+0+1+1+*"),
    ("empty", b""),
    ("array", b'[{"schedule": "0 0 1 1 *", "api": "http://127.0.0.1:9/"}]'),
    ("string", b'"job"'),
    ("null", b"null"),
    ("trailing-garbage", b'{"schedule": "0 0 1 1 *", "api": "http://127.0.0.1:9/"} x'),
    ("two-documents", b'{"schedule": "0 0 1 1 *", "api": "http://127.0.0.1:9/"}{}'),
    ("single-quotes", b"{'schedule': '0 0 1 1 *', 'api': 'http://127.0.0.1:9/'}"),
    ("invalid-utf8", b'{"schedule": "0 0 1 1 *", "api": "http://127.0.0.1:9/", '
                     b'"name": "a\xffb"}'),
    ("invalid-utf8-overlong", b'{"schedule": "0 0 1 1 *", "api": "http://127.0.0.1:9/", '
                              b'"body": "\xc0\xaf"}'),
    ("invalid-utf8-in-key", b'{"schedule": "0 0 1 1 *", "api": "http://127.0.0.1:9/", '
                            b'"\xfe": 1}'),
    ("lone-surrogate", b'{"schedule": "0 0 1 1 *", "api": "http://127.0.0.1:9/", '
                       b'"body": "\\ud800"}'),
    ("nul-in-name", b'{"schedule": "0 0 1 1 *", "api": "http://127.0.0.1:9/", '
                    b'"name": "a\\u0000b"}'),
    ("nul-in-body", b'{"schedule": "0 0 1 1 *", "api": "http://127.0.0.1:9/", '
                    b'"body": "x\\u0000"}'),
    ("nul-in-schedule", b'{"schedule": "0 0 1 1 *\\u0000", "api": "http://127.0.0.1:9/"}'),
    ("raw-nul-byte", b'{"schedule": "0 0 1 1 *", "api": "http://127.0.0.1:9/", '
                     b'"name": "a\x00b"}'),
    ("integer-overflow", b'{"schedule": "0 0 1 1 *", "api": "http://127.0.0.1:9/", '
                         b'"max_retries": 99999999999999999999}'),
    ("negative-overflow", b'{"schedule": "0 0 1 1 *", "api": "http://127.0.0.1:9/", '
                          b'"timeout_ms": -99999999999999999999}'),
    ("int64-overflow", b'{"schedule": "0 0 1 1 *", "api": "http://127.0.0.1:9/", '
                       b'"timeout_ms": 9223372036854775808}'),
    ("float-overflow", b'{"schedule": "0 0 1 1 *", "api": "http://127.0.0.1:9/", '
                       b'"max_retries": 1e999}'),
    ("deep-nesting", b'{"schedule": "0 0 1 1 *", "api": "http://127.0.0.1:9/", "body": '
                     + b"[" * DEEP + b"]" * DEEP + b"}"),
    ("deep-nesting-objects", b'{"schedule": "0 0 1 1 *", "api": "http://127.0.0.1:9/", '
                             b'"headers": ' + b'{"a":' * 20000 + b"1" + b"}" * 20000 + b"}"),
    ("duplicate-keys", b'{"schedule": "0 0 1 1 *", "api": "http://127.0.0.1:9/", '
                       b'"name": "a", "name": "b"}'),
    ("duplicate-keys-same-value", b'{"schedule": "0 0 1 1 *", "schedule": "0 0 1 1 *", '
                                  b'"api": "http://127.0.0.1:9/"}'),
    ("nan", b'{"schedule": "0 0 1 1 *", "api": "http://127.0.0.1:9/", "max_retries": NaN}'),
    ("comment", b'{"schedule": "0 0 1 1 *", /* c */ "api": "http://127.0.0.1:9/"}'),
]


@pytest.mark.parametrize("raw", [pytest.param(b, id=i) for i, b in MALFORMED])
def test_malformed_body_is_400_and_server_keeps_serving(server, raw):
    create(server, name="baseline")
    before = stored(server)
    for method, path in (("POST", JOBS), ("PUT", f"{JOBS}/baseline"),
                         ("PATCH", f"{JOBS}/baseline")):
        r = call(server, method, path, raw, headers={"Content-Type": "application/json"})
        assert_error(r, 400)
    assert stored(server) == before
    assert call(server, "GET", "/healthz").status == 200
    create(server)  # and still accepts a good one


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", "application/xml"])
def test_non_json_content_type_is_415(server, ctype):
    j = create(server, name="baseline")
    before = stored(server)
    hdrs = {"Content-Type": ctype} if ctype else {}
    for method, path in (("POST", JOBS), ("PUT", f"{JOBS}/{j['id']}"),
                         ("PATCH", f"{JOBS}/{j['id']}")):
        r = call(server, method, path, json.dumps(BASE).encode(), headers=hdrs)
        assert_error(r, 415)
    assert stored(server) == before


def test_body_over_1_mib_is_413_and_server_keeps_serving(server):
    j = create(server, name="baseline")
    before = stored(server)
    big = json.dumps(dict(BASE, body="x" * (1024 * 1024))).encode()
    assert len(big) > 1024 * 1024
    for method, path in (("POST", JOBS), ("PUT", f"{JOBS}/{j['id']}"),
                         ("PATCH", f"{JOBS}/{j['id']}")):
        r = call(server, method, path, big, headers={"Content-Type": "application/json"})
        assert_error(r, 413)
    assert stored(server) == before
    assert call(server, "GET", "/healthz").status == 200
    # just under the limit is not a 413 (whatever the job's own bounds say)
    small = b'{"schedule": "0 0 1 1 *", "api": "http://127.0.0.1:9/", "body": "' + \
        b"y" * (1024 * 1024 - 200) + b'"}'
    assert len(small) <= 1024 * 1024
    r = call(server, "POST", JOBS, small, headers={"Content-Type": "application/json"})
    assert r.status != 413
    create(server)


def test_chunked_body_over_limit_is_413(server):
    """No Content-Length: the cap applies while reading."""
    before = stored(server)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as c:
        c.sendall(b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        chunk = b"x" * 65536
        try:
            for _ in range(20):  # 1.25 MiB
                c.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            c.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may answer and close before reading it all
        data = b""
        while True:
            try:
                d = c.recv(65536)
            except OSError:
                break
            if not d:
                break
            data += d
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    assert stored(server) == before


# ---- routing errors ----------------------------------------------------------

@pytest.mark.parametrize("method,path,allowed", [
    ("DELETE", JOBS, {"GET", "POST"}),
    ("PUT", JOBS, {"GET", "POST"}),
    ("POST", f"{JOBS}/x", {"GET", "PUT", "PATCH", "DELETE"}),
    ("GET", f"{JOBS}/x/trigger", {"POST"}),
    ("DELETE", f"{JOBS}/x/pause", {"POST"}),
    ("PUT", f"{JOBS}/x/resume", {"POST"}),
    ("POST", f"{JOBS}/x/executions", {"GET"}),
    ("POST", EXECS, {"GET"}),
    ("DELETE", f"{EXECS}/x", {"GET"}),
    ("POST", PREVIEW, {"GET"}),
    ("POST", "/readyz", {"GET"}),
])
def test_wrong_method_is_405_with_allow(server, method, path, allowed):
    r = call(server, method, path, {} if method in ("POST", "PUT", "PATCH") else None)
    assert_error(r, 405, code="method_not_allowed")
    got = {m.strip() for m in r.headers["Allow"].split(",")}
    assert allowed <= got <= allowed | {"HEAD", "OPTIONS"}, r.headers["Allow"]


@pytest.mark.parametrize("path", ["/api/v1", "/api/v1/nope", "/api/v2/jobs",
                                  f"{JOBS}/x/y", f"{JOBS}/x/executions/y"])
def test_unknown_path_is_404_json(server, path):
    assert_error(call(server, "GET", path), 404, code="not_found")


# ---- API keys ----------------------------------------------------------------

def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def test_api_keys_required_on_every_api_route(start_server):
    s = start_server(env={"ASTER_API_KEYS": "k1,ro:k2"})
    rw, ro = bearer("k1"), bearer("k2")
    r = http("POST", s.url + JOBS, BASE, rw)
    assert r.status == 201, r.body
    j = r.json()
    r = http("POST", f"{s.url}{JOBS}/{j['id']}/trigger", None, rw)
    assert r.status == 202
    e = r.json()
    routes = [("GET", JOBS), ("POST", JOBS), ("GET", f"{JOBS}/{j['id']}"),
              ("PUT", f"{JOBS}/{j['id']}"), ("PATCH", f"{JOBS}/{j['id']}"),
              ("DELETE", f"{JOBS}/{j['id']}"), ("POST", f"{JOBS}/{j['id']}/trigger"),
              ("POST", f"{JOBS}/{j['id']}/pause"), ("POST", f"{JOBS}/{j['id']}/resume"),
              ("GET", f"{JOBS}/{j['id']}/executions"), ("GET", EXECS),
              ("GET", f"{EXECS}/{e['id']}"), ("GET", q(PREVIEW, schedule="* * * * *"))]
    before = http("GET", f"{s.url}{JOBS}?limit=1000", headers=rw).json()
    bad_auth = [None, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer k1x"},
                {"Authorization": "Bearer "}, {"Authorization": "Basic azE6"},
                {"Authorization": "k1"}, {"Authorization": "Bearer ro:k2"},
                {"X-API-Key": "k1"}]
    for method, path in routes:
        body = {"max_retries": 1} if method in ("PUT", "PATCH") else None
        if method == "POST" and path == JOBS:
            body = BASE
        for hdrs in bad_auth:
            r = http(method, s.url + path, body, hdrs)
            assert_error(r, 401)
    assert http("GET", f"{s.url}{JOBS}?limit=1000", headers=rw).json() == before
    # read-only: GET only
    for method, path in routes:
        if method == "GET":
            assert http(method, s.url + path, None, ro).status == 200, path
    for method, path in routes:
        if method != "GET":
            body = BASE if (method, path) == ("POST", JOBS) else (
                dict(BASE, name=j["name"]) if method == "PUT" else
                {"max_retries": 1} if method == "PATCH" else None)
            assert_error(http(method, s.url + path, body, ro), 403)
    assert http("GET", f"{s.url}{JOBS}?limit=1000", headers=rw).json() == before
    # /healthz and /readyz stay open
    assert http("GET", s.url + "/healthz").status == 200
    assert http("GET", s.url + "/readyz").status == 200
    # the write key may do everything
    assert http("PATCH", f"{s.url}{JOBS}/{j['id']}", {"max_retries": 1}, rw).status == 200
    assert http("DELETE", f"{s.url}{JOBS}/{j['id']}", None, rw).status == 204


def test_api_keys_file(start_server, tmp_path):
    f = tmp_path / "keys"
    f.write_text("filekey-rw-1\nro:filekey-ro-2\n")
    s = start_server(args=["--api-keys-file", str(f)])
    assert_error(http("GET", s.url + JOBS), 401)
    assert_error(http("GET", s.url + JOBS, None, bearer("nope")), 401)
    assert http("GET", s.url + JOBS, None, bearer("filekey-ro-2")).status == 200
    assert_error(http("POST", s.url + JOBS, BASE, bearer("filekey-ro-2")), 403)
    assert http("POST", s.url + JOBS, BASE, bearer("filekey-rw-1")).status == 201
    assert http("GET", s.url + "/healthz").status == 200


def test_unreadable_api_keys_file_refuses_to_start(tmp_path):
    p = run_aster("serve", "--listen", "127.0.0.1:0",
                  "--store", store_url(new_database(tmp_path, "k")),
                  "--api-keys-file", str(tmp_path / "missing"), timeout=10)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "--api-keys-file" in p.stderr


@pytest.mark.parametrize("content", ["", "# only a comment\n\n"])
def test_api_keys_file_without_keys_does_not_open_the_api(start_server, tmp_path, content):
    """An operator who passes --api-keys-file asked for keys: a file with none
    must fail closed (refuse to start, or refuse every request), never leave
    the API open."""
    f = tmp_path / "keys"
    f.write_text(content)
    s = start_server(args=["--api-keys-file", str(f)], wait=False)
    try:
        s.wait_ready(timeout=5)
    except RuntimeError:
        assert s.proc.returncode not in (None, 0)
        return
    assert_error(http("GET", s.url + JOBS), 401)


def test_api_keys_are_never_logged(start_server):
    keys = ["sekrit-rw-5d41402abc4b2a76", "sekrit-ro-7d793037a0760186"]
    wrong = "sekrit-wrong-e4da3b7fbbce2345"
    s = start_server(args=["--log-level", "debug"],
                     env={"ASTER_API_KEYS": f"{keys[0]},ro:{keys[1]}"})
    r = http("POST", s.url + JOBS, BASE, bearer(keys[0]))
    assert r.status == 201
    http("GET", s.url + JOBS, None, bearer(keys[1]))
    http("POST", s.url + JOBS, BASE, bearer(keys[1]))
    http("GET", s.url + JOBS, None, bearer(wrong))
    http("GET", s.url + JOBS + "?key=" + wrong, None, bearer(wrong))
    http("GET", s.url + JOBS)
    s.stop()
    logs = s.log_path.read_text()
    assert logs.strip()
    for k in keys + [wrong, "sekrit"]:
        assert k not in logs, f"{k} appears in the server log"


def test_no_keys_means_open_api(server):
    assert call(server, "GET", JOBS).status == 200
    assert call(server, "POST", JOBS, BASE, headers={"Authorization": "Bearer anything"}
                ).status == 201


# ---- OpenAPI and docs --------------------------------------------------------

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def norm(path):
    return re.sub(r"\{[^}]*\}", "{}", path)


def server_routes():
    src = (ROOT / "src" / "api" / "routes.c").read_text()
    routes = set(re.findall(r'\{\s*"([A-Z]+)"\s*,\s*"(/[^"]*)"', src))
    assert len(routes) >= 10, routes
    return {(m, norm(p)) for m, p in routes}


def openapi():
    try:
        import yaml
    except ImportError:  # a missing test dependency must not turn the check off
        pytest.fail("PyYAML is missing: install python3-yaml (scripts/deps.sh test)")
    return yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())


def test_openapi_matches_server_routes():
    doc = openapi()
    assert str(doc["openapi"]).startswith("3.0"), doc["openapi"]
    documented = {(m.upper(), norm(p)) for p, ops in doc["paths"].items()
                  for m in ops if m in METHODS}
    routes = server_routes()
    assert documented - routes == set(), "in openapi.yaml but not in the server"
    assert routes - documented == set(), "in the server but not in openapi.yaml"


def test_openapi_is_consistent():
    doc = openapi()
    schemas = doc["components"]["schemas"]
    for name in ("Job", "JobInput", "Execution", "Error"):
        assert name in schemas, name
    refs = set(re.findall(r"#/components/(\w+)/([\w.-]+)", json.dumps(doc)))
    for kind, name in refs:
        assert name in doc["components"].get(kind, {}), f"dangling $ref {kind}/{name}"
    for p, ops in doc["paths"].items():
        params = set(re.findall(r"\{([^}]+)\}", p))
        for m, op in ops.items():
            if m not in METHODS:
                continue
            assert "responses" in op and op.get("operationId"), (m, p)
            declared = {x.get("name") for x in op.get("parameters", []) + ops.get(
                "parameters", []) if "name" in x}
            declared |= {doc["components"]["parameters"][x["$ref"].split("/")[-1]]["name"]
                         for x in op.get("parameters", []) + ops.get("parameters", [])
                         if "$ref" in x}
            assert params <= declared, (m, p, params, declared)
            open_route = p in ("/healthz", "/readyz", "/metrics")
            assert (op.get("security") == []) == open_route, (m, p)
    # every job field of the issue is in the Job schema
    job = schemas["Job"]
    props = set()
    for part in job.get("allOf", [job]):
        if "$ref" in part:
            part = schemas[part["$ref"].split("/")[-1]]
        props |= set(part.get("properties", {}))
    assert JOB_FIELDS <= props, JOB_FIELDS - props


def test_openapi_validates_when_a_validator_is_installed():
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(openapi())


def test_api_md_covers_every_route():
    md = (ROOT / "docs" / "api.md").read_text()
    for m, p in sorted(server_routes()):
        path = p.replace("{}", "{id}")
        assert f"{m} {path}" in md, f"{m} {path} missing from docs/api.md"
    for word in ("curl", "Authorization: Bearer", "next_cursor", "413", "415", "409", "405",
                 "401", "403"):
        assert word in md, word
