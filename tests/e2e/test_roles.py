"""The role commands (`aster api|scheduler|worker`): their contracts that need no
database, and what `aster serve` on SQLite says about its own roles.  The roles at
work on PostgreSQL are in test_cluster.py."""
import re

from conftest import run_aster

ROLES = ("api", "scheduler", "worker")


def test_roles_refuse_sqlite(tmp_path):
    for role in ROLES:
        db = tmp_path / f"{role}.db"
        r = run_aster(role, "--store", f"sqlite:{db}", "--listen", "127.0.0.1:0")
        assert r.returncode == 2, (role, r.stderr)
        assert r.stderr.count("\n") == 1, r.stderr
        assert "--store" in r.stderr and "postgres://" in r.stderr
        assert not db.exists()  # refused before anything was opened


def test_role_help_lists_only_its_settings():
    want = {
        "api": ({"--api-keys", "--max-body", "--allow-commands", "--compat"},
                {"--concurrency", "--leader-lease", "--heartbeat-interval"}),
        "scheduler": ({"--leader-lease", "--worker-dead-after", "--alert-webhook",
                       "--history-max-age"},
                      {"--api-keys", "--concurrency", "--heartbeat-interval"}),
        "worker": ({"--concurrency", "--heartbeat-interval", "--worker-dead-after",
                    "--allow-commands"},
                   {"--api-keys", "--leader-lease", "--history-max-age"}),
    }
    for role, (has, hasnt) in want.items():
        r = run_aster("help", role)
        assert r.returncode == 0
        flags = set(re.findall(r"--[a-z-]+", r.stdout))
        assert has <= flags, (role, has - flags)
        assert not (hasnt & flags), (role, hasnt & flags)
        assert "ASTER_STORE" in r.stdout
    assert "scheduler" in run_aster("help").stdout


def test_role_flags_are_checked():
    url = "postgres://aster@127.0.0.1:1/none"
    r = run_aster("worker", "--store", url, "--heartbeat-interval", "5s",
                  "--worker-dead-after", "2s")
    assert r.returncode == 2 and "--worker-dead-after" in r.stderr
    assert r.stderr.count("\n") == 1
    r = run_aster("scheduler", "--store", url, "--leader-lease", "100ms")
    assert r.returncode == 2 and "--leader-lease" in r.stderr
    r = run_aster("api", "--store", url, "--concurrency", "5")
    assert r.returncode == 2 and "--concurrency" in r.stderr
    r = run_aster("worker", "--store", url, "--api-keys", "k")
    assert r.returncode == 2 and "--api-keys" in r.stderr


def test_unreachable_database_fails_at_start():
    r = run_aster("worker", "--store", "postgres://aster@127.0.0.1:1/none",
                  "--listen", "127.0.0.1:0", timeout=60)
    assert r.returncode == 1
    assert "PostgreSQL" in r.stdout + r.stderr


def test_serve_on_sqlite_is_its_own_leader(server):
    text = server.get("/metrics").body.decode()
    assert re.search(r"^aster_scheduler_leader 1$", text, re.M), text
