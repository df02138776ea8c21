"""Issue 15: the simulator writes a job's event log as text (runs of checkpoint saves a chunk at a
time, no object made) and reads where the saves are from the job's stored summary instead of
replaying the rule. What a user sees must not change: these tests pin the exact bytes of the log,
the job and its checkpoints through the lives of varied jobs (digests taken before the change),
for jobs stored with the improvements and for older rows without them, and that the text is
exactly what encoding the event objects gives."""

from __future__ import annotations

import hashlib
import io
import json
import random
import sqlite3
import uuid
from pathlib import Path

import pytest
from kit import MODEL, WORKED, create_job

from ftctl import early_stopping as es
from ftctl import wire
from ftctl.backends.simulator import timeline
from ftctl.backends.simulator.backend import Simulator
from ftctl.backends.simulator.scenarios import Scenario

T0 = 1_780_000_000.25  # every job is created at this instant, its id fixed: the bytes are too
INF = float("inf")
# name: (create body, scenario, speed, cancelled this many seconds after creation)
JOBS = {
    "improving-1000": ({"n_evals": 1000, "early_stopping_enabled": True}, Scenario("improving", preset="improving"),
                       INF, None),
    "worked": ({"n_epochs": 5, "n_evals": 10, "n_checkpoints": 4, "early_stopping_enabled": True,
                "early_stopping_patience": 2}, Scenario("w", tuple(WORKED), 24), 10.0, None),
    "noisy": ({"n_epochs": 4, "n_evals": 40, "n_checkpoints": 5, "early_stopping_enabled": True,
               "early_stopping_patience": 3, "random_seed": 7}, Scenario("noisy", preset="noisy"), 10.0, None),
    "runs": ({"n_epochs": 3, "n_evals": 12, "n_checkpoints": 3, "early_stopping_enabled": True,
              "early_stopping_patience": 9},
             Scenario("r", (3.0, 2.0, 2.5, 1.9, 1.8, 1.85, 1.7, 1.75, 1.76, 1.6, 1.65, 1.5), 8), 3.5, None),
    "error": ({"n_epochs": 3, "n_evals": 30, "early_stopping_enabled": True}, Scenario("error", preset="error"),
              10.0, None),
    "nan": ({"n_epochs": 3, "n_evals": 30, "early_stopping_enabled": True, "early_stopping_min_delta": 0.01,
             "early_stopping_warmup_evals": 3}, Scenario("nan", preset="nan"), INF, None),
    "plain": ({"n_epochs": 2, "n_evals": 7, "n_checkpoints": 3}, Scenario("plateau", preset="plateau"), 10.0, None),
    # fewer steps than evaluations: several evaluations share a step
    "few-steps": ({"n_epochs": 2, "n_evals": 10, "early_stopping_enabled": True, "early_stopping_patience": 3},
                  Scenario("f", (5.0, 4.0, 3.0, 3.5, 2.0, 2.5, 1.0, 1.5, 1.6, 1.7), 3), 1.0, None),
    "cancelled": ({"n_epochs": 5, "n_evals": 10, "n_checkpoints": 4, "early_stopping_enabled": True},
                  Scenario("noisy", preset="noisy"), 10.0, 4.0),
    "cancelled-pending": ({"n_epochs": 2, "n_evals": 5, "early_stopping_enabled": True},
                          Scenario("plateau", preset="plateau"), 10.0, 0.1),
}
# sha256 of everything read at every instant (``_reads``), as ftctl wrote it before the change
BEFORE = {
    "improving-1000": "098f21957385b4ed",
    "worked": "bdb3abc2d2965e0d",
    "noisy": "ba4f132fd7581ce7",
    "runs": "e3a1092445c0ce9e",
    "error": "e99f409f3a45a11a",
    "nan": "14523da146d142e8",
    "plain": "07186bc094ac0e74",
    "few-steps": "05de8dc83bcc48f7",
    "cancelled": "f66f810e73e7f070",
    "cancelled-pending": "555749040801c407",
}


def _create(home: Path, name: str, monkeypatch: pytest.MonkeyPatch, *, old_row: bool = False) -> str:
    body, scenario, speed, cancel = JOBS[name]
    body = {"training_file": "file-train", "validation_file": "file-val", "model": MODEL, **body}
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=list(JOBS).index(name) + 1))
    job_id = Simulator(home, speed=speed, clock=lambda: T0, scenario=scenario).create(body)["id"]
    monkeypatch.undo()
    if cancel is not None:
        Simulator(home, speed=speed, clock=lambda: T0 + cancel).cancel(job_id)
    if old_row:  # as a store written before the summary kept the rule's improvements
        with sqlite3.connect(home / "simulator.db") as db:
            summary = json.loads(db.execute("SELECT summary FROM jobs WHERE id = ?", (job_id,)).fetchone()[0])
            assert {"improved", "rule"} <= set(summary)
            summary = {k: v for k, v in summary.items() if k not in ("improved", "rule")}
            db.execute("UPDATE jobs SET summary = ? WHERE id = ?", (json.dumps(summary), job_id))
    return job_id


def _instants(name: str) -> list[float]:
    """Seconds after creation: pending, queued, mid-run, uploading, ended (an instant job: all at once)."""
    return [0.0, 1.0] if JOBS[name][2] == INF else [0.0, 0.3, 0.61, 1.0, 2.5, 4.0, 7.77, 10.0, 13.0, 1e6]


def _reads(home: Path, name: str, job_id: str) -> str:
    """What ``events --json``, ``retrieve --json`` (with the log) and ``checkpoints --json`` print."""
    digest = hashlib.sha256()
    for dt in _instants(name):
        sim = Simulator(home, speed=JOBS[name][2], clock=lambda: T0 + dt)
        out = io.StringIO()
        wire.write(out, sim.events(job_id))
        for text in (out.getvalue(), wire.dumps(sim.retrieve(job_id)), wire.dumps(sim.checkpoints(job_id))):
            digest.update(text.encode())
        sim.close()
    return digest.hexdigest()[:16]


@pytest.mark.parametrize("old_row", [False, True], ids=["stored", "old-row"])
@pytest.mark.parametrize("name", list(JOBS))
def test_the_log_job_and_checkpoints_are_the_bytes_they_were(tmp_path, monkeypatch, name, old_row):
    job_id = _create(tmp_path, name, monkeypatch, old_row=old_row)
    assert _reads(tmp_path, name, job_id) == BEFORE[name]


@pytest.mark.parametrize("name", list(JOBS))
def test_the_written_log_is_the_encoded_events(tmp_path, monkeypatch, name):
    """The text path (--json, sim serve) and the object path (--type, the human view) agree, and each
    checkpoint_save carries the fields and digest every other view of that checkpoint uses."""
    job_id = _create(tmp_path, name, monkeypatch)
    for dt in _instants(name):
        sim = Simulator(tmp_path, speed=JOBS[name][2], clock=lambda: T0 + dt)
        rows = sim.events(job_id)
        out = io.StringIO()
        wire.write(out, rows)
        events = [dict(e) for e in rows]  # read as objects
        assert out.getvalue() == wire.dumps(events) + "\n" == wire.dumps(rows) + "\n"
        assert wire.dumps({"data": rows}) == f'{{"data":{wire.dumps(events)}}}'  # sim serve's answer
        seed = sim.retrieve(job_id)["random_seed"]
        for e in events:
            assert list(e)[:14] == list(events[0])
            if e["type"] == "checkpoint_save":
                assert e["hash"] == timeline._artifact_hash(seed, e["step"])
                assert e["checkpoint_path"] == f"s3://ftctl-sim/{job_id}/checkpoints/step-{e['step']}"
                assert e["token_count"] == e["step"] * timeline.TOKENS_PER_STEP
        sim.close()


def test_events_json_of_a_new_job_neither_replays_the_rule_nor_reads_the_curve(ftctl, monkeypatch):
    job_id = create_job(ftctl, "--n-epochs", "3", "--n-evals", "30", "--early-stopping", "--sim-scenario", "noisy",
                        "--n-checkpoints", "4")
    expected = ftctl("events", job_id, "--json").json()
    assert sum(e["type"] == "checkpoint_save" for e in expected) > 3

    def refused(*args, **kwargs):
        raise AssertionError("the rule was replayed")

    from ftctl.backends.simulator.store import Record

    monkeypatch.setattr(es, "trail", refused)
    monkeypatch.setattr(Record, "eval_loss", property(lambda self: refused()))
    result = ftctl("events", job_id, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json() == expected


@pytest.mark.parametrize("seed", range(40))
def test_the_stored_improvements_are_the_replayed_ones(seed):
    """``Plan.summary`` keeps where the best improved and the rule's last state; read back, they are
    what replaying the rule gives, whatever the curve, settings and failure."""
    rng = random.Random(seed)
    n_evals = rng.choice([1, 2, 5, 30, 200])
    values = [rng.choice([rng.uniform(0.5, 3.0), 1.0, 1.0 - 1e-9, float("nan")] if rng.random() < 0.05 else
                         [3.0 / (1 + i) + rng.gauss(0, 0.3)]) for i in range(n_evals)]
    settings = rng.choice([None, es.Settings(rng.randint(1, 6), rng.choice([0.0, 0.01, 0.2]), rng.randint(0, 3))])
    n_epochs = rng.randint(1, 4)
    spe = rng.choice([max(1, n_evals // n_epochs // 2), max(1, -(-n_evals // n_epochs)), 50])
    plan = timeline.make_plan(n_epochs=n_epochs, steps_per_epoch=spe, n_evals=n_evals, eval_loss=values,
                              settings=settings, fail_at=rng.choice([None, None, rng.randint(1, n_epochs * spe)]),
                              n_checkpoints=rng.randint(1, 5), seed=seed)
    summary = json.loads(json.dumps(plan.summary()))  # as stored
    replayed = timeline.make_plan(n_epochs=n_epochs, steps_per_epoch=spe, n_evals=n_evals, eval_loss=values,
                                  settings=settings, fail_at=plan.fail_at, n_checkpoints=1, seed=seed)
    improved, final = replayed.improvements()
    assert timeline.known_improvements(plan, summary) == (sorted(improved), final)
    assert timeline.known_improvements(plan, {}) == (sorted(improved), final)  # an older row


def test_a_summary_damaged_by_hand_falls_back_to_the_replay():
    plan = timeline.make_plan(n_epochs=1, steps_per_epoch=10, n_evals=5, eval_loss=[5, 4, 3, 2, 1],
                              settings=es.Settings(), fail_at=None, n_checkpoints=1, seed=0)
    expected = timeline.known_improvements(plan, plan.summary())
    for damaged in ({"improved": 3, "rule": None}, {"improved": "1-x", "rule": None}, {"improved": "1-5"}):
        assert timeline.known_improvements(plan, damaged) == expected
