"""Helpers for the cluster fail-over tests (test_cluster.py): a private
PostgreSQL server the tests may stop and restart, and `aster` role
processes (serve, api, scheduler, worker) on loopback.

The server is started as scripts/pg-test.sh starts one: initdb in a fresh
directory, 127.0.0.1 only, a free port, trust authentication, fsync off; as
root the server programs run as the `postgres` user (PostgreSQL refuses to
run as root) through `runuser -u postgres --`, with the directory chowned to
it.  Client programs (createdb, psql) connect over TCP as `aster`."""
import datetime
import glob
import itertools
import json
import os
import pwd
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time

from conftest import ASTER_BIN, free_port, http

FINAL = {"succeeded", "failed", "timed_out", "skipped", "missed", "cancelled"}


# ---- PostgreSQL --------------------------------------------------------------

def pg_bindir():
    """The newest /usr/lib/postgresql/*/bin holding initdb, or None."""
    dirs = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
            if os.access(os.path.join(d, "initdb"), os.X_OK)
            and os.access(os.path.join(d, "pg_ctl"), os.X_OK)
            and os.access(os.path.join(d, "psql"), os.X_OK)]
    if not dirs:
        return None
    return max(dirs, key=lambda d: [int(x) for x in re.findall(r"\d+", d.split("/")[-2])])


def pg_unavailable_reason():
    """Why a private server cannot be started here, or None."""
    if pg_bindir() is None:
        return ("PostgreSQL server programs not installed (/usr/lib/postgresql/*/bin/initdb; "
                "apt-get install postgresql)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root but there is no `postgres` user to run the server as"
        if not shutil.which("runuser"):
            return "running as root but runuser(1) is missing"
    return None


class PgServer:
    """A throwaway PostgreSQL server on 127.0.0.1:port; stop() and start()
    keep the same port, so clients reconnect to the same URL."""

    def __init__(self):
        self.bindir = pg_bindir()
        self.dir = tempfile.mkdtemp(prefix="aster-pgcluster-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        self.as_pg = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_pg = ["runuser", "-u", "postgres", "--"]
        self.port = None
        self.running = False
        self._names = itertools.count(1)
        r = self._server_cmd(["initdb", "-D", self.data, "-U", "aster", "--auth=trust",
                              "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], timeout=120)
        if r.returncode != 0:
            raise RuntimeError("initdb failed: " + r.stdout + r.stderr)

    def _server_cmd(self, argv, timeout=60):
        # cwd: the postgres user may not be allowed into the caller's directory
        return subprocess.run(self.as_pg + [os.path.join(self.bindir, argv[0]), *argv[1:]],
                              cwd=self.dir, capture_output=True, text=True, timeout=timeout)

    def _pg_ctl_start(self):
        return self._server_cmd(
            ["pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60",
             "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} "
                   "-c fsync=off -c max_connections=300", "start"], timeout=90)

    def start(self):
        """Starts the server: on a free port the first time, on the same
        port after stop()."""
        if self.running:
            return
        if self.port is None:
            # a port found free may be taken before the server binds it
            for _ in range(5):
                self.port = free_port()
                if self._pg_ctl_start().returncode == 0:
                    break
                self.port = None
            if self.port is None:
                raise RuntimeError("PostgreSQL did not start: " + self.server_log())
        else:
            r = self._pg_ctl_start()
            if r.returncode != 0:
                raise RuntimeError(f"PostgreSQL did not restart on port {self.port}: "
                                   + r.stdout + r.stderr + self.server_log())
        self.running = True

    def stop(self, mode="fast"):
        """Stops the server (fast: clients are disconnected at once)."""
        if not self.running:
            return
        r = self._server_cmd(["pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"],
                             timeout=90)
        if r.returncode != 0:
            raise RuntimeError("pg_ctl stop failed: " + r.stdout + r.stderr)
        self.running = False

    def restart(self):
        self.stop()
        self.start()

    def destroy(self):
        try:
            self.stop("immediate")
        except Exception:  # noqa: BLE001 -- best effort, the directory goes anyway
            pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def server_log(self):
        try:
            with open(self.log) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def url(self, db):
        return f"postgres://aster@127.0.0.1:{self.port}/{db}"

    def _client(self, prog, *args, timeout=60):
        env = dict(os.environ, PGCONNECT_TIMEOUT="10")
        return subprocess.run([os.path.join(self.bindir, prog), "-h", "127.0.0.1",
                               "-p", str(self.port), "-U", "aster", *args],
                              capture_output=True, text=True, timeout=timeout, env=env)

    def createdb(self, prefix="aster"):
        """A new empty database; returns its name."""
        name = f"{re.sub(r'[^a-z0-9_]', '_', prefix.lower())[:40]}_{os.getpid()}_{next(self._names)}"
        r = self._client("createdb", name)
        if r.returncode != 0:
            raise RuntimeError("createdb failed: " + r.stderr)
        return name

    def dropdb(self, name):
        self._client("psql", "-X", "-q", "-d", "postgres", "-c",
                     f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def query(self, db, sql):
        """Rows of SQL as lists of strings (None for NULL)."""
        r = self._client("psql", "-X", "-q", "-A", "-t", "-F", "\x1f", "-P", "null=\x1e",
                         "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql)
        if r.returncode != 0:
            raise RuntimeError(f"psql: {sql}: {r.stderr.strip()}")
        rows = []
        for line in r.stdout.split("\n"):
            if line == "":
                continue
            rows.append([None if c == "\x1e" else c for c in line.split("\x1f")])
        return rows


class PsqlSession:
    """One long-lived psql connection, to hold a transaction (and its row
    locks) open across steps of a test."""

    def __init__(self, pg, db):
        env = dict(os.environ, PGCONNECT_TIMEOUT="10")
        self.proc = subprocess.Popen(
            [os.path.join(pg.bindir, "psql"), "-X", "-q", "-A", "-t", "-F", "\x1f",
             "-h", "127.0.0.1", "-p", str(pg.port), "-U", "aster", "-d", db],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        self._n = itertools.count(1)
        self._buf = b""

    def _line(self, deadline):
        """The next output line, read from the descriptor itself (a buffered
        reader would hide complete lines from select())."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.time()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError("psql session ended: " + self._buf.decode(errors="replace"))
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode(errors="replace")

    def run(self, sql, timeout=15):
        """Runs SQL; returns its output rows (lists of strings).  Raises on
        an ERROR line or when it does not complete in `timeout` s."""
        marker = f"__aster_done_{next(self._n)}__"
        self.proc.stdin.write((sql.rstrip().rstrip(";") + ";\n\\echo " + marker + "\n").encode())
        self.proc.stdin.flush()
        rows, errors = [], []
        deadline = time.time() + timeout
        while True:
            line = self._line(deadline)
            if line is None:
                raise RuntimeError(f"psql session: no answer to {sql!r} in {timeout} s")
            if line == marker:
                break
            if line.startswith(("ERROR:", "FATAL:", "psql:")):
                errors.append(line)
            elif line:
                rows.append(line.split("\x1f"))
        if errors:
            raise RuntimeError(f"psql session: {sql!r}: {errors}")
        return rows

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


def epoch_seconds(v):
    """A stored instant (integer seconds, ms or µs since the epoch) in
    seconds: the schema's unit is internal, so it is told by magnitude."""
    v = int(v)
    if v > 10**14:
        return v / 1e6
    if v > 10**11:
        return v / 1e3
    return float(v)


def parse_t(s):
    """An RFC 3339 UTC instant as the API and the logs write it."""
    s = s.rstrip("Z")
    fmt = "%Y-%m-%dT%H:%M:%S.%f" if "." in s else "%Y-%m-%dT%H:%M:%S"
    return datetime.datetime.strptime(s, fmt).replace(
        tzinfo=datetime.timezone.utc).timestamp()


# ---- aster processes ---------------------------------------------------------

def role_missing(role):
    """Why `aster ROLE` cannot be run with this binary, or None."""
    if not os.access(ASTER_BIN, os.X_OK):
        return f"{ASTER_BIN} is not built"
    r = subprocess.run([ASTER_BIN, role, "--help"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        return f"`aster {role}` is not in this binary: {(r.stderr or r.stdout).strip()[:200]}"
    return None


class Aster:
    """One `aster ROLE` process on a free loopback port, logging JSON lines
    to a file of its own."""

    def __init__(self, role, log_dir, store, args=(), env=None, name=None):
        self.role = role
        self.name = name or role
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(str(log_dir), f"{self.name}-{self.port}.log")
        self.log = open(self.log_path, "w")
        e = dict(os.environ)
        e.update(env or {})
        self.argv = [ASTER_BIN, role, "--listen", f"127.0.0.1:{self.port}", "--store", store,
                     "--log-format", "json", *args]
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=e)
        self.pid = self.proc.pid
        self.stopped_at = None

    def __repr__(self):
        return f"<{self.name} pid {self.pid} :{self.port}>"

    def alive(self):
        return self.proc.poll() is None

    def get(self, path, timeout=5):
        return http("GET", self.url + path, timeout=timeout)

    def post(self, path, body=None, timeout=10):
        return http("POST", self.url + path, body, timeout=timeout)

    def status(self, path, timeout=2):
        """HTTP status of GET path, or None when the process does not answer."""
        try:
            return self.get(path, timeout=timeout).status
        except OSError:
            return None

    def wait_status(self, path, want=200, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self} exited {self.proc.returncode}:\n{self.logs()[-3000:]}")
            if self.status(path) == want:
                return self
            time.sleep(0.1)
        raise AssertionError(f"{self}: GET {path} did not answer {want} in {timeout} s:\n"
                             + self.logs()[-3000:])

    def metrics(self):
        """{name: value} of the unlabelled samples of /metrics (labelled ones
        keep their labels in the name)."""
        out = {}
        r = self.get("/metrics", timeout=3)
        if r.status != 200:
            return out
        for line in r.body.decode().splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            try:
                out[name.strip()] = float(value)
            except ValueError:
                pass
        return out

    def leader(self):
        """aster_scheduler_leader of this process: 1, 0, or None if it does not answer."""
        try:
            return self.metrics().get("aster_scheduler_leader")
        except OSError:
            return None

    def logs(self):
        try:
            self.log.flush()
        except ValueError:
            pass
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def log_lines(self, msg=None):
        """The JSON log lines (optionally only those with this msg), each with
        `_t`: its timestamp in epoch seconds."""
        out = []
        for raw in self.logs().splitlines():
            raw = raw.strip()
            if not raw.startswith("{"):
                continue
            try:
                d = json.loads(raw)
            except ValueError:
                continue
            if msg is not None and d.get("msg") != msg:
                continue
            ts = d.get("ts") or d.get("time")
            try:
                d["_t"] = parse_t(ts) if ts else None
            except ValueError:
                d["_t"] = None
            out.append(d)
        return out

    def send(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def kill9(self):
        self.send(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGCONT)  # a SIGSTOPped process cannot exit on SIGTERM
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode


class Cluster:
    """The processes of one test, on one database; every one is stopped by
    close(), by PID."""

    def __init__(self, pg, db, log_dir):
        self.pg = pg
        self.db = db
        self.store = pg.url(db)
        self.log_dir = log_dir
        self.procs = []
        self.sessions = []

    def session(self):
        """A PsqlSession on this database, closed by close()."""
        s = PsqlSession(self.pg, self.db)
        self.sessions.append(s)
        return s

    def start(self, role, *args, name=None, env=None):
        """Starts `aster ROLE ARGS` on this database; its PostgreSQL sessions
        carry application_name=NAME (pg_stat_activity tells them apart)."""
        name = name or role
        p = Aster(role, self.log_dir, f"{self.store}?application_name={name}", args, env, name)
        self.procs.append(p)
        return p

    def wait_healthy(self, procs=None, timeout=30):
        for p in procs or self.procs:
            p.wait_status("/healthz", 200, timeout)

    def query(self, sql):
        return self.pg.query(self.db, sql)

    def close(self):
        for s in self.sessions:
            s.close()
        for p in self.procs:
            try:
                p.stop(signal.SIGKILL, timeout=10)
            except Exception:  # noqa: BLE001 -- stop the others whatever happens
                pass

    def dump_logs(self, lines=40):
        """The tail of every process's log, for assertion messages."""
        out = []
        for p in self.procs:
            tail = p.logs().splitlines()[-lines:]
            out.append(f"--- {p} (rc {p.proc.returncode}) ---\n" + "\n".join(tail))
        return "\n".join(out)
