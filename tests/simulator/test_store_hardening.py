"""The simulator's store under stress: concurrent processes, a writer killed mid-write, a damaged
or newer store, an unusable FTCTL_HOME. Nothing is lost silently and every failure is one line."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ftctl.backends.simulator.store import SCHEMA_VERSION

from workers import created_by
from kit import MODEL, TESTS

BASE = ["create", "-t", "file-train", "-v", "file-val", "-m", MODEL, "--n-evals", "4", "--early-stopping"]

# A worker: for ``seconds``, create / retrieve / list / cancel through ftctl's own entry point, in its
# own process, printing every id it created. Finite speed, so cancels find running jobs.
WORKER = textwrap.dedent("""
    import json, random, sys, time
    sys.path.insert(0, TESTS)
    from workers import call

    seconds, rng, mine = float(sys.argv[1]), random.Random(int(sys.argv[2])), []
    end = time.time() + seconds
    while time.time() < end:
        action = rng.choice(["create", "create", "retrieve", "list", "cancel"])
        if action == "create" or not mine:
            code, out, err = call(*BASE, "-q")
            assert code == 0, err
            mine.append(out.strip())
            print("created", mine[-1], flush=True)
        elif action == "retrieve":
            code, out, err = call("retrieve", rng.choice(mine), "--json")
            assert code == 0, err
            assert json.loads(out)["id"] in mine
        elif action == "list":
            code, out, err = call("list", "--json")
            assert code == 0, err
            assert set(mine) <= {j["id"] for j in json.loads(out)}
        else:
            code, out, err = call("cancel", rng.choice(mine), "--yes", "--json")
            assert code in (0, 1), err   # 1: that job had already ended
    print("ok", flush=True)
""").replace("BASE", repr(BASE)).replace("TESTS", repr(str(TESTS)))


def test_eight_processes_at_once_lose_and_duplicate_nothing(ftctl, ftctl_home):
    env = {**os.environ, "FTCTL_SIM_SPEED": "200"}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, "4", str(seed)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env) for seed in range(8)]
    created = created_by(workers)
    assert len(created) >= 8 and len(set(created)) == len(created)  # none duplicated
    listed = [j["id"] for j in ftctl("list", "--json").json()]
    assert sorted(listed) == sorted(created)  # none lost, none extra
    for job_id in created:
        assert ftctl("retrieve", job_id, "--json").exit_code == 0


def test_a_writer_killed_mid_write_leaves_the_store_readable(ftctl, ftctl_home):
    writer = textwrap.dedent("""
        import contextlib, io
        from ftctl.__main__ import run
        while True:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                run(BASE + ["-q"])
    """).replace("BASE", repr(BASE))
    for delay in (0.6, 0.9, 1.3):
        proc = subprocess.Popen([sys.executable, "-c", writer], env=dict(os.environ))
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    jobs = ftctl("list", "--json")
    assert jobs.exit_code == 0, jobs.stderr
    assert jobs.json(), "the writer created jobs before it was killed"
    db = sqlite3.connect(ftctl_home / "simulator.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for job in jobs.json()[:5]:
        assert ftctl("retrieve", job["id"], "--json").exit_code == 0
    # and the cache beside it is still valid JSON
    json.loads((ftctl_home / "jobs.json").read_text())


def _one_job(ftctl) -> str:
    result = ftctl(*BASE, "-q")
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_store_is_refused_with_the_way_out_and_left_alone(ftctl, ftctl_home, damage):
    _one_job(ftctl)
    db = ftctl_home / "simulator.db"
    for extra in ("-wal", "-shm"):
        Path(str(db) + extra).unlink(missing_ok=True)
    if damage == "garbage":
        db.write_bytes(b"this is not a database at all " * 200)
    else:
        data = db.read_bytes()
        db.write_bytes(data[:100] + b"\0" * 50 + data[150:len(data) // 2])
    before = db.read_bytes()
    result = ftctl("list")
    assert result.exit_code == 1
    assert len(result.problems) == 1
    assert "is damaged" in result.stderr and f"mv {db} {db}.damaged" in result.stderr
    assert "Traceback" not in result.stderr
    assert db.read_bytes() == before  # never rewritten behind the user's back
    # the way out works
    db.rename(str(db) + ".damaged")
    assert ftctl("list", "--json").json() == []


def test_a_store_from_a_newer_ftctl_is_refused(ftctl, ftctl_home):
    _one_job(ftctl)
    db = sqlite3.connect(ftctl_home / "simulator.db")
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    result = ftctl("list")
    assert result.exit_code == 1
    assert f"written by a newer ftctl (schema 99, this ftctl reads {SCHEMA_VERSION})" in result.stderr


def test_read_only_home_is_a_clear_error(ftctl):
    # /sys refuses new directories even to root, so this holds on any Linux CI machine
    for command in (BASE, ["list"]):
        result = ftctl(*command, env={"FTCTL_HOME": "/sys/ftctl-home"})
        assert result.exit_code == 2
        assert "/sys/ftctl-home (FTCTL_HOME)" in result.stderr and "writable directory" in result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""


def test_home_that_is_a_file_is_a_clear_error(ftctl, ftctl_home):
    ftctl_home.parent.mkdir(parents=True, exist_ok=True)
    ftctl_home.write_text("not a directory")
    result = ftctl(*BASE)
    assert result.exit_code == 2
    assert str(ftctl_home) in result.stderr and "FTCTL_HOME" in result.stderr
    assert len(result.problems) == 1


def test_state_files_are_user_only(ftctl, ftctl_home):
    _one_job(ftctl)
    assert (ftctl_home.stat().st_mode & 0o777) == 0o700
    for name in ("simulator.db", "jobs.json"):
        assert ((ftctl_home / name).stat().st_mode & 0o077) == 0, name


def test_a_store_from_the_first_schema_is_upgraded_in_place_and_keeps_its_jobs(ftctl, ftctl_home, tmp_path):
    """Schema 1 had no stored final job; its rows are read the slow way and new ones the fast way."""
    old_job = _one_job(ftctl)
    before = ftctl("retrieve", old_job, "--json").json()
    db_path = ftctl_home / "simulator.db"
    columns = "seq, id, created_at, speed, cancel_at, seed, body, scenario, eval_loss, summary"
    v1 = tmp_path / "v1.db"
    old = sqlite3.connect(v1)
    old.execute("CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, "
                "created_at REAL NOT NULL, speed TEXT NOT NULL, cancel_at REAL, seed INTEGER NOT NULL, "
                "body TEXT NOT NULL, scenario TEXT, eval_loss TEXT NOT NULL, summary TEXT NOT NULL)")
    old.execute("ATTACH DATABASE ? AS current", (str(db_path),))
    old.execute(f"INSERT INTO jobs ({columns}) SELECT {columns} FROM current.jobs")
    old.commit()
    old.execute("DETACH DATABASE current")
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()
    for extra in ("", "-wal", "-shm"):
        Path(str(db_path) + extra).unlink(missing_ok=True)
    v1.rename(db_path)
    assert ftctl("retrieve", old_job, "--json").json() == before
    new_job = _one_job(ftctl)
    assert {j["id"] for j in ftctl("list", "--json").json()} == {old_job, new_job}
    assert sqlite3.connect(db_path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
