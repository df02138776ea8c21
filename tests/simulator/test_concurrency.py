"""Issue 7: the simulator's store and ftctl's cache under concurrent processes, beyond
``test_store_hardening.py`` (which runs 8 mixed workers and kills a writer): here 8 processes
cancel the same jobs at the same moment while others create and list, and the cache of recent jobs
(``jobs.json``, what TAB completes from) must end up holding every job, exactly once.
``pytest -rP tests/simulator/test_concurrency.py`` prints the counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

from ftctl.local_state import LocalState

from workers import created_by
from kit import MODEL, TESTS

BASE = ["create", "-t", "file-train", "-v", "file-val", "-m", MODEL, "--n-evals", "4", "--early-stopping"]
WORKERS = 8

# For ``seconds`` after ``start`` (a shared instant, so they really collide): create, list, and cancel
# jobs that every worker shares, through ftctl's entry point, each in its own process.
WORKER = textwrap.dedent("""
    import json, random, sys, time
    sys.path.insert(0, TESTS)
    from workers import call

    start, seconds, rng = float(sys.argv[1]), float(sys.argv[2]), random.Random(int(sys.argv[3]))
    shared = sys.argv[4].split(",")
    while time.time() < start:
        time.sleep(0.001)
    for job_id in shared:  # all workers cancel the same jobs at once
        code, out, err = call("cancel", job_id, "--yes", "--json")
        assert code == 0, err
        assert json.loads(out)["status"] in ("cancel_requested", "cancelled"), out
    end = time.time() + seconds
    while time.time() < end:
        action = rng.choice(["create", "create", "list", "cancel"])
        if action == "create":
            code, out, err = call(*BASE, "-q")
            assert code == 0, err
            print("created", out.strip(), flush=True)
        elif action == "list":
            code, out, err = call("list", "--json")
            assert code == 0, err
            ids = [j["id"] for j in json.loads(out)]
            assert len(ids) == len(set(ids)), "a job listed twice"
        else:
            code, out, err = call("cancel", rng.choice(shared), "--yes")
            assert code == 0, err
    print("ok", flush=True)
""").replace("BASE", repr(BASE)).replace("TESTS", repr(str(TESTS)))


def test_concurrent_cancels_of_the_same_jobs_while_others_create_and_list(ftctl, ftctl_home):
    env = {**os.environ, "FTCTL_SIM_SPEED": "1"}  # slow: the shared jobs are still running when cancelled
    shared = []
    for _ in range(3):
        made = ftctl(*BASE, "-q", env={"FTCTL_SIM_SPEED": "1"})
        assert made.exit_code == 0, made.stderr
        shared.append(made.stdout.strip())
    start = time.time() + 1.0  # every worker has started Python by then
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(start), "2", str(seed), ",".join(shared)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for seed in range(WORKERS)]
    created = created_by(workers)
    assert len(created) >= WORKERS and len(set(created)) == len(created)

    everyone = set(created) | set(shared)
    listed = [j["id"] for j in ftctl("list", "--json", env={"FTCTL_SIM_SPEED": "1"}).json()]
    assert sorted(listed) == sorted(everyone)  # none lost, none duplicated, none extra
    # the cancel was recorded once, at the first request, however many processes asked
    for job_id in shared:
        events = ftctl("events", job_id, "--json", env={"FTCTL_SIM_SPEED": "1"}).json()
        assert [e["type"] for e in events].count("cancel_requested") == 1, job_id
    # and the cache beside the store holds every job once, in valid JSON
    cache = json.loads((ftctl_home / "jobs.json").read_text())
    cached = [j["id"] for j in cache["jobs"]]
    assert len(cached) == len(set(cached)) and set(cached) == everyone
    assert {j["id"] for j in LocalState(ftctl_home).recent()} == everyone
    print(f"concurrency: {WORKERS} processes, {len(created) + len(shared)} jobs created, {len(listed)} found "
          f"in the store, {len(cached)} in the cache; {len(shared)} jobs cancelled by all {WORKERS} at once, "
          "one cancel each")
