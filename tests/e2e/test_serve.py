"""Foundation end-to-end tests: the real `aster` binary, real sockets, a
real database per test (a SQLite file, or a PostgreSQL database: conftest)."""
import json
import os
import pathlib
import signal
import socket
import subprocess
import time

import pytest

from conftest import (ASTER_BIN, STORE_KIND, Server, db_query, db_tables, free_port, http,
                      new_database, pg_admin, run_aster, store_url, wait_for)

ROOT = pathlib.Path(__file__).resolve().parents[2]


def one_error_line(proc):
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_healthz_and_readyz(server):
    r = server.get("/healthz")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"status": "ok"}
    r = server.get("/readyz")
    assert r.status == 200
    assert r.json()["status"] == "ready"


def lose_database(db):
    """Takes DB away from the server using it, as a lost disk or server would."""
    if STORE_KIND == "sqlite":
        os.unlink(db)  # the file the server writes to is gone
        return
    # No new connections, and the server's own are cut: it must reconnect, and cannot.
    pg_admin(f'ALTER DATABASE "{db}" WITH ALLOW_CONNECTIONS false')
    pg_admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")


def test_readyz_reports_lost_database(tmp_path):
    s = Server(tmp_path).wait_ready()
    try:
        lose_database(s.db)
        r = s.get("/readyz")
        assert r.status == 503
        body = r.json()
        assert body["status"] == "unavailable"
        assert body["reason"]
        assert s.get("/healthz").status == 200  # alive, but not ready
    finally:
        s.stop()


def test_listening_line_is_logged_with_address(server):
    def complete_lines():  # /healthz may answer before the line is written
        lines = [json.loads(l) for l in server.logs().split("\n")[:-1] if l.strip()]
        return lines if any(l["msg"] == "listening" for l in lines) else None
    lines = wait_for(complete_lines, timeout=5)
    listening = [l for l in lines if l["msg"] == "listening"]
    assert listening and listening[0]["address"] == f"127.0.0.1:{server.port}"
    for l in lines:  # every line: time, level, component, message
        assert {"time", "level", "component", "msg"} <= set(l)


def test_text_log_format(tmp_path):
    s = Server(tmp_path, args=["--log-format", "text"])
    # the constructor added "--log-format json" first; the later flag wins
    s.wait_ready()
    s.stop()
    text = s.log_path.read_text()
    assert " info  [serve] listening address=127.0.0.1:" in text
    assert not text.lstrip().startswith("{")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_clean_shutdown_on_signal(tmp_path, sig):
    s = Server(tmp_path).wait_ready()
    t0 = time.monotonic()
    rc = s.stop(sig)
    assert rc == 0
    assert time.monotonic() - t0 < 2.0
    msgs = [json.loads(l)["msg"] for l in s.log_path.read_text().splitlines() if l.strip()]
    assert "shutting down" in msgs and msgs[-1] == "stopped"


def test_shutdown_lets_in_flight_request_finish(tmp_path):
    s = Server(tmp_path).wait_ready()
    body = b'{"x": 1}'
    with socket.create_connection(("127.0.0.1", s.port), timeout=5) as c:
        c.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body[:3])
        time.sleep(0.2)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        c.sendall(body[3:])
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
    # The request was answered (405: /healthz is GET only), not dropped.
    assert data.startswith(b"HTTP/1.1 405"), data
    assert s.proc.wait(5) == 0
    s.log.close()


@pytest.mark.sqlite_only("one process per SQLite file (a lock); PostgreSQL is shared by design")
def test_second_server_on_same_database_is_refused(tmp_path):
    s = Server(tmp_path).wait_ready()
    try:
        port = free_port()
        p = run_aster("serve", "--listen", f"127.0.0.1:{port}", "--store", f"sqlite:{s.db}",
                      "--log-format", "text", timeout=10)
        assert p.returncode == 1
        assert "in use by another aster process" in p.stderr
        assert s.get("/healthz").status == 200  # the first is unharmed
    finally:
        s.stop()


def test_non_loopback_refused_without_keys(tmp_path):
    db = new_database(tmp_path, "a")
    p = run_aster("serve", "--listen", "0.0.0.0:0", "--store", store_url(db))
    assert p.returncode == 2
    line = one_error_line(p)
    assert "--listen" in line and "--insecure" in line
    assert db_tables(db) == []  # refused before the store was touched
    assert not (tmp_path / "a.db").exists()


def test_insecure_or_keys_pass_the_guard(tmp_path):
    # 192.0.2.1 (TEST-NET-1) is not on this machine: binding it fails after
    # the guard, which shows the guard let it through (no traffic is sent).
    store = store_url(new_database(tmp_path, "b"))
    for extra, env in ((["--insecure"], {}), ([], {"ASTER_API_KEYS": "k1"})):
        p = run_aster("serve", "--listen", "192.0.2.1:0", "--store",
                      store, "--log-format", "text", *extra, env=env)
        assert p.returncode == 1, p.stderr
        assert "cannot listen on 192.0.2.1:0" in p.stderr


@pytest.mark.parametrize("args,env,field", [
    (["--bogus"], {}, "--bogus"),
    (["--concurrency", "abc"], {}, "--concurrency"),
    (["--concurrency=0"], {}, "--concurrency"),
    (["--log-level", "loud"], {}, "--log-level"),
    (["--log-format", "xml"], {}, "--log-format"),
    (["--listen", "nope"], {}, "--listen"),
    (["--listen", "127.0.0.1:99999"], {}, "--listen"),
    (["extra"], {}, "extra"),
    ([], {"ASTER_CONCURRENCY": "many"}, "ASTER_CONCURRENCY"),
    ([], {"ASTER_LOG_LEVEL": "chatty"}, "ASTER_LOG_LEVEL"),
])
def test_bad_configuration_exits_2_naming_it(tmp_path, args, env, field):
    p = run_aster("serve", "--store", store_url(new_database(tmp_path, "c")), *args, env=env)
    assert p.returncode == 2
    line = one_error_line(p)
    assert line.startswith(f"error: {field}: "), line
    assert p.stdout == ""


def test_flag_wins_over_environment(tmp_path):
    port = free_port()
    s = Server(tmp_path, env={"ASTER_LISTEN": "not-an-address", "ASTER_LOG_LEVEL": "warn"})
    s.wait_ready()  # --listen from the flag won over the bad variable
    s.get("/healthz")
    s.stop()
    assert '"level":"info"' not in s.log_path.read_text()  # the variable still applies


def test_environment_configures_listen(tmp_path):
    port = free_port()
    db = new_database(tmp_path, "e")
    e = dict(os.environ, ASTER_LISTEN=f"127.0.0.1:{port}", ASTER_STORE=store_url(db))
    p = subprocess.Popen([ASTER_BIN, "serve"], env=e, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if http("GET", f"http://127.0.0.1:{port}/healthz", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("not listening on ASTER_LISTEN")
        assert "jobs" in db_tables(db)  # ASTER_STORE was used
    finally:
        p.terminate()
        assert p.wait(5) == 0


def test_unknown_route_and_method(server):
    r = server.get("/nope")
    assert r.status == 404
    assert r.json()["error"]["code"] == "not_found"
    r = http("DELETE", server.url + "/healthz")
    assert r.status == 405
    assert r.headers["Allow"] == "GET"
    assert r.json()["error"]["code"] == "method_not_allowed"


def test_body_over_limit_is_413(tmp_path, start_server):
    s = start_server(args=["--max-body", "2048"])
    r = s.post("/healthz", body=b"x" * 5000, headers={"Content-Type": "application/json"})
    assert r.status == 413
    assert r.json()["error"]["code"] == "too_large"
    assert s.get("/healthz").status == 200


def test_version_and_help():
    p = run_aster("version")
    assert p.returncode == 0 and p.stdout.startswith("aster ")
    for args in (["help"], ["--help"], []):
        p = run_aster(*args)
        assert p.returncode == 0 and "serve" in p.stdout and "migrate" in p.stdout
    p = run_aster("help", "serve")
    assert p.returncode == 0 and "--listen" in p.stdout and "ASTER_LISTEN" in p.stdout
    p = run_aster("serve", "--help")
    assert p.returncode == 0 and "--store" in p.stdout
    p = run_aster("help", "nosuch")
    assert p.returncode == 2
    one_error_line(p)
    p = run_aster("nosuch")
    assert p.returncode == 2
    one_error_line(p)


def test_migrate_creates_and_is_idempotent(tmp_path):
    db = new_database(tmp_path, "m")
    p = run_aster("migrate", "--store", store_url(db), "--log-format", "text")
    assert p.returncode == 0, p.stderr
    first = p.stdout.strip()
    assert first.startswith("schema version ")
    if STORE_KIND == "sqlite":
        tables = subprocess.run(["sqlite3", str(db), ".tables"], capture_output=True,
                                text=True).stdout.split()
        idx = subprocess.run(["sqlite3", str(db), ".indexes executions"], capture_output=True,
                             text=True).stdout
    else:
        tables = db_tables(db)
        idx = "\n".join(r[0] for r in db_query(
            db, "SELECT indexname FROM pg_indexes WHERE tablename = 'executions'"))
    for t in ("jobs", "executions", "alerts", "schema_migrations"):
        assert t in tables
    assert idx.strip()
    p = run_aster("migrate", "--store", store_url(db), "--log-format", "text")
    assert p.returncode == 0 and "up to date" in p.stdout
    p = run_aster("migrate", "--store", "mysql://x", "--log-format", "text")
    assert p.returncode != 0 and "store" in p.stderr


@pytest.mark.sqlite_only("checks SQLite's journal mode")
def test_sqlite_pragmas_wal(tmp_path):
    db = tmp_path / "w.db"
    assert run_aster("migrate", "--store", f"sqlite:{db}").returncode == 0
    mode = subprocess.run(["sqlite3", str(db), "PRAGMA journal_mode;"], capture_output=True,
                          text=True).stdout.strip()
    assert mode == "wal"


def test_configuration_doc_lists_every_setting():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    help_text = "".join(run_aster("help", c).stdout
                        for c in ("serve", "migrate", "api", "scheduler", "worker"))
    flags = {w for w in help_text.split() if w.startswith("--")}
    envs = {w for w in help_text.split() if w.startswith("ASTER_")}
    assert flags and envs
    for name in flags | envs:
        assert name in doc, f"{name} missing from docs/configuration.md"
    example = (ROOT / "deploy" / "aster.env.example").read_text()
    for name in envs:
        assert name in example, f"{name} missing from deploy/aster.env.example"


def test_make_run_serves_healthz(tmp_path):
    port = free_port()
    p = subprocess.Popen(["make", "-s", "-C", str(ROOT), "run", f"LISTEN=127.0.0.1:{port}",
                          f"STORE={store_url(new_database(tmp_path, 'run'))}",
                          f"BUILD={ROOT / 'build'}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if http("GET", f"http://127.0.0.1:{port}/healthz", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("make run did not serve /healthz")
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(10)


def test_declared_oversized_body_refused_before_upload(server):
    # 413 at once from Content-Length alone: no "100 Continue", no body read.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as c:
        c.sendall(b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000000000\r\nExpect: 100-continue\r\n\r\n")
        data = c.recv(4096)
    assert data.startswith(b"HTTP/1.1 413"), data
    assert b'"too_large"' in data
    assert server.get("/healthz").status == 200
