"""Shared fixtures for end-to-end tests: they drive the real `aster` binary
(ASTER_BIN, set by `make test`) over real sockets, each with its own
temporary database, and stop every process they start.

The store is SQLite (a file per test) unless ASTER_TEST_STORE=postgres: then
every database is a fresh one created for the test on the PostgreSQL server
named by ASTER_TEST_PG_URL (scripts/pg-test.sh starts one on loopback) and
dropped when the test ends.  Tests read the backend from STORE_KIND (or the
`store_kind` fixture); `@pytest.mark.sqlite_only("reason")` skips a test that
cannot apply to PostgreSQL."""
import glob
import itertools
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

ASTER_BIN = os.environ.get("ASTER_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "aster")

STORE_KIND = os.environ.get("ASTER_TEST_STORE") or "sqlite"
if STORE_KIND not in ("sqlite", "postgres"):
    raise RuntimeError(f"ASTER_TEST_STORE={STORE_KIND}: expected sqlite or postgres")
PG_URL = os.environ.get("ASTER_TEST_PG_URL", "")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "sqlite_only(reason): the test cannot apply to PostgreSQL; skipped there")
    if STORE_KIND == "postgres" and not PG_URL.startswith("postgres"):
        raise pytest.UsageError("ASTER_TEST_STORE=postgres needs ASTER_TEST_PG_URL "
                                "(run under scripts/pg-test.sh)")


def pytest_runtest_setup(item):
    m = item.get_closest_marker("sqlite_only")
    if m and STORE_KIND != "sqlite":
        if not m.args:
            raise pytest.UsageError(f"{item.nodeid}: sqlite_only needs a reason")
        pytest.skip("SQLite only: " + m.args[0])


@pytest.fixture
def store_kind():
    """"sqlite" or "postgres": the backend every server of this run uses."""
    return STORE_KIND


# ---- databases: a file on SQLite, a fresh database on PostgreSQL ----------

def _pg_bindir():
    dirs = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
            if os.access(os.path.join(d, "psql"), os.X_OK)]
    if not dirs:
        raise RuntimeError("PostgreSQL client programs not found in /usr/lib/postgresql/*/bin")
    return max(dirs, key=lambda d: [int(x) for x in d.split("/")[-2].split(".")
                                    if x.isdigit()])


_pg_names = itertools.count(1)
_pg_created = []  # databases created and not yet dropped


def pg_url(name):
    """The URL of database NAME on the test server."""
    u = urllib.parse.urlsplit(PG_URL)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name, u.query, u.fragment))


def pg_admin(sql):
    """Runs SQL on the server's maintenance database (outside a transaction)."""
    r = subprocess.run([os.path.join(_pg_bindir(), "psql"), "-X", "-q",
                        "-v", "ON_ERROR_STOP=1", "-d", pg_url("postgres"), "-c", sql],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"psql: {sql}: {r.stderr.strip()}")


def new_database(tmp_path, name="aster"):
    """A new empty database: on SQLite the path of a file not yet made in
    tmp_path, on PostgreSQL the name of a database just created.  Pass it
    to Server(db=...) or store_url()."""
    if STORE_KIND == "sqlite":
        return str(tmp_path / f"{name}.db")
    db = f"aster_e2e_{os.getpid()}_{next(_pg_names)}"
    pg_admin(f'CREATE DATABASE "{db}"')
    _pg_created.append(db)
    return db


def store_url(db):
    """The --store value for a database from new_database()."""
    return f"sqlite:{db}" if STORE_KIND == "sqlite" else pg_url(db)


def drop_databases():
    while _pg_created:
        db = _pg_created.pop()
        try:  # FORCE: a process a test left behind cannot keep it alive
            pg_admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            print(f"warning: {e}")


@pytest.fixture(autouse=True)
def _drop_test_databases():
    """Set up before, so torn down after, every other fixture of the test:
    its servers are stopped by then."""
    yield
    drop_databases()


def pytest_sessionfinish(session):
    drop_databases()


def _pg_literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, float)):
        return repr(v)
    return "'" + str(v).replace("'", "''") + "'"


def _pg_bind(sql, params):
    parts = sql.split("?")
    if len(parts) != len(params) + 1:
        raise ValueError(f"{len(parts) - 1} placeholders, {len(params)} parameters: {sql}")
    out = [parts[0]]
    for v, rest in zip(params, parts[1:]):
        out += [_pg_literal(v), rest]
    return "".join(out)


def _psql(db, sql):
    r = subprocess.run([os.path.join(_pg_bindir(), "psql"), "-X", "-q", "-A", "-t",
                        "-v", "ON_ERROR_STOP=1", "-d", pg_url(db)],
                       input=sql, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"psql: {r.stderr.strip()}")
    return r.stdout


def db_execute(db, *statements):
    """Runs (sql, params) statements on database DB in one transaction, with
    `?` placeholders on either backend (booleans bind as 0/1 on SQLite)."""
    if STORE_KIND == "sqlite":
        import sqlite3
        con = sqlite3.connect(db)
        try:
            for sql, params in statements:
                con.execute(sql, params)
            con.commit()
        finally:
            con.close()
        return
    _psql(db, "BEGIN;\n" + "".join(_pg_bind(sql, params) + ";\n"
                                   for sql, params in statements) + "COMMIT;\n")


def db_query(db, sql, params=()):
    """The rows (tuples, typed) of one query on database DB."""
    if STORE_KIND == "sqlite":
        import sqlite3
        con = sqlite3.connect(db)
        try:
            return [tuple(r) for r in con.execute(sql, params)]
        finally:
            con.close()
    out = _psql(db, "SELECT coalesce(json_agg(row_to_json(q)), '[]') FROM (" +
                _pg_bind(sql, params) + ") q")
    return [tuple(r.values()) for r in json.loads(out)]


def db_tables(db):
    """The names of the tables in database DB ([] for no SQLite file)."""
    if STORE_KIND == "sqlite":
        if not os.path.exists(db):
            return []
        return sorted(r[0] for r in db_query(db, "SELECT name FROM sqlite_master "
                                                 "WHERE type = 'table'"))
    return sorted(r[0] for r in db_query(db, "SELECT tablename FROM pg_tables "
                                             "WHERE schemaname = 'public'"))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_aster(*args, env=None, timeout=30, input=None):
    """Runs `aster ARGS...` to completion; returns CompletedProcess (text)."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([ASTER_BIN, *args], capture_output=True, text=True,
                          timeout=timeout, env=e, input=input)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


def http(method, url, body=None, headers=None, timeout=10):
    """One real HTTP request; returns Response whatever the status."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.headers, e.read())


class Server:
    """An `aster serve` process on a free loopback port."""

    def __init__(self, tmp_path, args=(), env=None, db=None):
        self.port = free_port()
        # On SQLite the default is the same file for every Server of a test
        # (as it always was); on PostgreSQL each gets a fresh database.
        self.db = db or (str(tmp_path / "aster.db") if STORE_KIND == "sqlite"
                         else new_database(tmp_path))
        self.store = store_url(self.db)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"aster-{self.port}.log"
        e = dict(os.environ)
        e.update(env or {})
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [ASTER_BIN, "serve", "--listen", f"127.0.0.1:{self.port}",
             "--store", self.store, "--log-format", "json", *args],
            stdout=self.log, stderr=subprocess.STDOUT, env=e)

    def wait_ready(self, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                raise RuntimeError(f"aster exited {self.proc.returncode}: "
                                   f"{self.log_path.read_text()}")
            try:
                if http("GET", self.url + "/healthz", timeout=1).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        logs = self.logs()
        self.stop(signal.SIGKILL)  # never leave a process behind
        raise RuntimeError("aster did not become healthy: " + logs)

    def get(self, path, **kw):
        return http("GET", self.url + path, **kw)

    def post(self, path, body=None, **kw):
        return http("POST", self.url + path, body, **kw)

    def logs(self):
        self.log.flush()
        return self.log_path.read_text()

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path)
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()  # also when start-up failed: never leave a process behind


@pytest.fixture
def start_server(tmp_path):
    """Factory: start_server(args=..., env=...) -> Server; all stopped after."""
    started = []

    def start(args=(), env=None, db=None, wait=True):
        s = Server(tmp_path, args, env, db)
        started.append(s)
        return s.wait_ready() if wait else s

    yield start
    for s in started:
        s.stop(signal.SIGKILL)


# ---- a real HTTP sink on loopback, for jobs to call -------------------------

import http.server as httpserver
import threading


class Sink:
    """Records every request; the path chooses the answer:
    /ok 200 · /fail 500 · /hang (sleeps 30 s) · /close (drops the
    connection unanswered) · /slow?ms=N (200 after N ms)."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        self.concurrent = 0
        self.max_concurrent = 0
        sink = self

        class H(httpserver.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with sink.lock:
                    sink.requests.append({"t": time.time(), "method": self.command,
                                          "path": self.path, "headers": dict(self.headers),
                                          "body": body})
                    sink.concurrent += 1
                    sink.max_concurrent = max(sink.max_concurrent, sink.concurrent)
                try:
                    p = self.path.split("?")[0]
                    if p == "/close":
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if p == "/hang":
                        time.sleep(30)
                    if p == "/slow":
                        ms = int(self.path.split("ms=")[1]) if "ms=" in self.path else 1000
                        time.sleep(ms / 1000)
                    code = 500 if p == "/fail" else 200
                    out = b'{"ok": %s}' % (b"true" if code == 200 else b"false")
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    pass
                finally:
                    with sink.lock:
                        sink.concurrent -= 1

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        class Srv(httpserver.ThreadingHTTPServer):
            daemon_threads = True
            # Python's default backlog of 5 drops connections in bursts of
            # fires, and curl retries them a second later: late, not Aster.
            request_queue_size = 256

        self.httpd = Srv(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def count(self, path=None):
        with self.lock:
            return len([r for r in self.requests if path is None or r["path"] == path])

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.stop()


def wait_for(pred, timeout=10, interval=0.05):
    """Polls pred() until it returns a truthy value; returns it or fails."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("condition not met in %.1f s" % timeout)
