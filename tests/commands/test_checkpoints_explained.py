"""Checkpoints that explain themselves (issue 13 item 4): the same checkpoints, download ids, promoted
one and reason on a terminal, piped and under --json; the simulator saves what n_checkpoints says,
plus the best evaluation's checkpoint when early stopping may promote it."""

from __future__ import annotations

import pytest

from kit import BASE, WORKED


def made(ftctl, *args: str) -> str:
    result = ftctl(*BASE, *args, "-q")
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def stopped(ftctl, scenario_file) -> str:
    """The worked example: best at step 48, halted at step 72; one checkpoint asked for."""
    return made(ftctl, "--n-epochs", "5", "--n-evals", "10", "--n-checkpoints", "1", "--early-stopping",
                "--sim-scenario", scenario_file(WORKED, steps_per_epoch=24))


@pytest.fixture
def ran_out(ftctl, scenario_file) -> str:
    """No early stopping, three checkpoints over 48 steps: saves at 16 and 32, the final at 48."""
    return made(ftctl, "--n-epochs", "2", "--n-evals", "4", "--n-checkpoints", "3",
                "--sim-scenario", scenario_file([2.0, 1.5, 1.2, 1.0], steps_per_epoch=24))


def three_forms(ftctl, job_id: str):
    as_json = ftctl("checkpoints", job_id, "--json").json()
    piped = [line.split("\t") for line in ftctl("checkpoints", job_id).stdout.splitlines()]
    term = ftctl("checkpoints", job_id, tty=160, env={"NO_COLOR": "1"}).stdout
    return as_json, piped, term


def check_same_facts(as_json, piped, term):
    assert len(piped) == len(as_json)
    for c, row in zip(as_json, piped):
        # piped: download id, step, type, "promoted" or "", path, created_at, why
        assert row == [c["download_id"], str(c["step"]), c["checkpoint_type"], "promoted" if c["promoted"] else "",
                       c["path"], c["created_at"], c["why"]]
        line = next(line for line in term.splitlines() if line.split() and line.split()[0] == c["download_id"])
        assert str(c["step"]) in line.split()
        assert ("★ " + c["checkpoint_type"] in line) == c["promoted"]
        assert " ".join(c["why"].split()[:2]) in line  # the reason starts on the checkpoint's line


def test_the_worked_example_promotes_step_48_and_says_why(ftctl, stopped):
    as_json, piped, term = three_forms(ftctl, stopped)
    # n_checkpoints 1 saves only the final model; early stopping keeps its best evaluation's checkpoint
    assert [(c["checkpoint_type"], c["step"]) for c in as_json] == [("Final", 48), ("Intermediate (step 48)", 48)]
    final, best = as_json
    assert (final["promoted"], final["download_id"]) == (True, stopped)
    assert (best["promoted"], best["download_id"]) == (False, f"{stopped}:48")
    assert final["why"] == "best eval_loss 0.4213 (step 48); halted at step 72"
    assert best["why"] == "best eval_loss 0.4213: the promoted step"
    # the API's fields are unchanged, ftctl's three come after them
    assert list(final) == ["step", "path", "created_at", "checkpoint_type", "checkpoint", "download_id",
                           "promoted", "why"]
    check_same_facts(as_json, piped, term)


def test_a_run_to_its_end_promotes_the_last_step(ftctl, ran_out):
    as_json, piped, term = three_forms(ftctl, ran_out)
    assert [(c["step"], c["promoted"]) for c in as_json] == [(48, True), (32, False), (16, False)]
    assert as_json[0]["why"] == "last step of 48: early stopping off"
    assert [c["why"] for c in as_json[1:]] == ["scheduled: 2 of n_checkpoints 3", "scheduled: 1 of n_checkpoints 3"]
    assert [c["download_id"] for c in as_json] == [ran_out, f"{ran_out}:32", f"{ran_out}:16"]
    check_same_facts(as_json, piped, term)


def test_early_stopping_that_never_fires_keeps_the_best_and_ships_the_last(ftctl, scenario_file):
    job = made(ftctl, "--n-epochs", "2", "--n-evals", "6", "--early-stopping", "--patience", "2",
               "--sim-scenario", scenario_file([2.0, 1.0, 1.1, 0.9, 0.8, 0.85], steps_per_epoch=24))
    rows = ftctl("checkpoints", job, "--json").json()
    assert [(c["step"], c["promoted"], c["why"]) for c in rows] == [
        (48, True, "last step of 48: early stopping never fired"),
        (40, False, "best eval_loss 0.8 so far, kept for early stopping")]


def test_fields_can_ask_for_the_download_id(ftctl, stopped):
    rows = ftctl("checkpoints", stopped, "--fields", "download_id,promoted").json()
    assert rows == [{"download_id": stopped, "promoted": True}, {"download_id": f"{stopped}:48", "promoted": False}]
