"""Every view of a job tells the same numbers (issue 12, "two answers for one job").

A failed job once showed 47 steps in ``list`` and 48 in ``retrieve``: the object stored when a job
ends was computed at the very instant it ended, where dividing the elapsed time by the step time
gave one step too few. Here each simulator preset is read at many instants of its life, through
the simulator's own calls, every CLI view (list, retrieve, and their --json) and ``sim serve``'s
HTTP list and retrieve, and every view must agree.
"""

from __future__ import annotations

import time

import httpx
import pytest
from kit import MODEL

from ftctl.backends.simulator import scenarios, timeline
from ftctl.backends.simulator.backend import Simulator
from served import TOKEN, served

NUMBERS = ("status", "steps_completed", "evals_completed", "epochs_completed", "total_steps",
           "early_stopped", "early_stopping_best_step", "early_stopping_best_metric")
BODY = {"model": MODEL, "training_file": "file-train", "validation_file": "file-val", "n_epochs": 2,
        "n_evals": 10, "early_stopping_enabled": True, "early_stopping_patience": 2}
CREATE = ("create", "-m", MODEL, "-t", "file-train", "-v", "file-val", "--n-epochs", "2", "--n-evals", "10",
          "--early-stopping", "--patience", "2")
BEFORE_TRAINING = timeline.PENDING + timeline.QUEUED + timeline.DOWNLOAD  # in steps


def numbers(job: dict) -> dict:
    return {k: job.get(k) for k in NUMBERS}


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize("speed", [30.0, 7.0, 0.03, 1000.0, float("inf")])
@pytest.mark.parametrize("preset", list(scenarios.PRESETS))
def test_the_simulators_list_and_retrieve_agree_at_every_step(tmp_path, preset, speed):
    """Read at every step boundary (where rounding bites) and between them, and long after."""
    clock = Clock(1_764_000_000.123)
    sim = Simulator(tmp_path, speed=speed, clock=clock, scenario=scenarios.load(preset))
    created = clock.t
    job_id = sim.create(dict(BODY))["id"]
    clock.t = created + 1e6
    run_steps = sim.retrieve(job_id)["steps_completed"]
    step = 0.0 if speed == float("inf") else 1 / speed
    for k in range(BEFORE_TRAINING + run_steps + timeline.UPLOAD + 2):
        for fraction in (0.0, 0.5):
            clock.t = created + (k + fraction) * step
            listed = next(j for j in sim.list() if j["id"] == job_id)
            assert numbers(listed) == numbers(sim.retrieve(job_id)), (k, fraction)
            assert numbers(listed) == numbers(sim.retrieve(job_id, events=False)), (k, fraction)
    clock.t = created + 1e6
    final = sim.retrieve(job_id)
    # the event log and the job say the same about where the run ended
    ended = [e for e in final["events"] if e["type"] in ("job_error", "training_complete")]
    assert ended and ended[-1]["step"] == final["steps_completed"] == run_steps
    assert numbers(next(j for j in sim.list() if j["id"] == job_id)) == numbers(final)
    sim.close()


def _plain_retrieve(text: str) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)


def _cell(value) -> str:
    return {True: "true", False: "false", None: ""}.get(value, str(value)) if isinstance(value, (bool, type(None))) \
        else str(value)


def test_every_view_agrees_for_every_preset_at_several_instants(ftctl, monkeypatch, ftctl_home, sim_time,
                                                                run_environment):
    """CLI list/retrieve (human and --json) and sim serve's HTTP list/retrieve, for each preset,
    at instants from pending to long after the end.

    The jobs are created in the past (the simulator's clock moved back) at a slow, inexact speed, so
    that a reader on the real clock sees each at a chosen instant in the middle of a step: seconds
    of drift while the test runs change nothing."""
    speed = 0.03  # a step every 33.3 s
    step = 1 / speed
    monkeypatch.setenv("FTCTL_SIM_SPEED", str(speed))

    expected_final = {}
    jobs: dict[str, tuple[str, float]] = {}
    for preset in scenarios.PRESETS:  # the end of each preset's run, to place the instants
        probe = Simulator(ftctl_home / "probe", speed=float("inf"), scenario=scenarios.load(preset))
        final = probe.retrieve(probe.create(dict(BODY))["id"])
        probe.close()
        expected_final[preset] = final
        run = final["steps_completed"]
        instants = [1, 3, 5, BEFORE_TRAINING + 1, BEFORE_TRAINING + run // 2, BEFORE_TRAINING + run - 1,
                    BEFORE_TRAINING + run + 1, BEFORE_TRAINING + run + timeline.UPLOAD + 2, 10_000]
        for k in instants:
            age = (k + 0.5) * step
            sim_time.t = time.time() - age
            made = ftctl(*CREATE, "--sim-scenario", preset, "--json")
            assert made.exit_code == 0, made.stderr
            jobs[made.json()["id"]] = (preset, k)
    run_environment["environment"] = None  # from here on, every reader is on the real clock

    listed_json = {j["id"]: j for j in ftctl("list", "--json").json()}
    listed_plain = {line.split("\t", 1)[0]: line.split("\t") for line in ftctl("list").stdout.splitlines()}
    with served(ftctl_home, speed=str(speed), args=()) as server:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            http_list = {j["id"]: j for j in http.get("/v1/fine-tunes").json()["data"]}
            http_one = {job_id: http.get(f"/v1/fine-tunes/{job_id}").json() for job_id in jobs}

    statuses = set()
    for job_id, (preset, k) in jobs.items():
        where = f"{preset} at step-time {k}"
        one = ftctl("retrieve", job_id, "--json").json()
        expected = numbers(one)
        statuses.add(one["status"])
        assert numbers(listed_json[job_id]) == expected, where
        assert numbers(http_list[job_id]) == expected, where
        assert numbers(http_one[job_id]) == expected, where
        plain = _plain_retrieve(ftctl("retrieve", job_id).stdout)
        for key in NUMBERS:
            if key in plain or one.get(key) is not None:
                assert plain.get(key) == _cell(one.get(key)), (where, key)
        row = listed_plain[job_id]
        assert one["status"] in row and str(one["steps_completed"]) in row, (where, row)
        if k == 10_000:
            assert expected == numbers(expected_final[preset]), where
    # the instants covered the life of a job
    assert {"pending", "queued", "running", "completed", "error"} <= statuses
