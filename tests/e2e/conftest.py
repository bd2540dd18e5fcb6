"""Shared fixtures for end-to-end tests: they drive the real `aster` binary
(ASTER_BIN, set by `make test`) over real sockets, each with its own
temporary database, and stop every process they start."""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

ASTER_BIN = os.environ.get("ASTER_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "aster")


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
        self.db = db or str(tmp_path / "aster.db")
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"aster-{self.port}.log"
        e = dict(os.environ)
        e.update(env or {})
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [ASTER_BIN, "serve", "--listen", f"127.0.0.1:{self.port}",
             "--store", f"sqlite:{self.db}", "--log-format", "json", *args],
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
