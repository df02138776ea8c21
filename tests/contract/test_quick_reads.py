"""The quick reads (``ftctl.commands.quick``): ``retrieve ID --json``, ``list --json``,
``events ID --json`` and ``checkpoints ID --json`` are answered without the command tree, and
must say exactly what the tree says: the same stdout, stderr and exit code, for jobs in every
state and for the errors. Each case runs twice at the same simulated instant, once as a user's
command line is run and once with the quick path switched off."""

from __future__ import annotations

import pytest
from kit import create_job

from ftctl.commands import quick


@pytest.fixture
def both(ftctl, monkeypatch):
    """``both(*argv)``: (the answer as run, the answer from the Typer tree)."""

    def run(*argv: str, env: dict | None = None):
        taken = []
        real = quick.answer

        def spy(args, environment):
            try:
                code = real(args, environment)
            except Exception:  # an error raised here was answered here too
                taken.append(True)
                raise
            taken.append(code is not None)
            return code

        monkeypatch.setattr(quick, "answer", spy)
        as_run = ftctl(*argv, env=env)
        monkeypatch.setattr(quick, "answer", lambda args, environment: None)
        tree = ftctl(*argv, env=env)
        monkeypatch.setattr(quick, "answer", real)
        return as_run, tree, taken == [True]

    return run


@pytest.fixture
def jobs(ftctl, sim_time, monkeypatch):
    """Jobs in every state at the simulated instant the tests read them."""
    monkeypatch.setenv("FTCTL_SIM_SPEED", "1")  # a step a second: a fresh job is still running
    made = {
        "early-stopped": create_job(ftctl, "--n-evals", "10", "--early-stopping", "--sim-scenario", "plateau"),
        "failed": create_job(ftctl, "--n-evals", "10", "--sim-scenario", "error"),
    }
    sim_time.advance(10_000)  # both have ended
    made["cancelled"] = create_job(ftctl, "--n-evals", "10", "--early-stopping")
    sim_time.advance(30)
    assert ftctl("cancel", made["cancelled"], "--yes").exit_code == 0
    made["running"] = create_job(ftctl, "--n-evals", "10", "--early-stopping", "--sim-scenario", "noisy")
    sim_time.advance(40)
    return made


@pytest.mark.parametrize("state", ["early-stopped", "failed", "cancelled", "running"])
@pytest.mark.parametrize("command", ["retrieve", "events", "checkpoints"])
def test_a_job_read_quickly_is_the_same_bytes_as_from_the_tree(both, jobs, command, state):
    as_run, tree, quick_taken = both(command, jobs[state], "--json")
    assert quick_taken
    assert (as_run.exit_code, as_run.stdout, as_run.stderr) == (tree.exit_code, tree.stdout, tree.stderr)
    assert as_run.exit_code == 0 and as_run.stdout.startswith(("{", "["))


@pytest.mark.parametrize("argv", [["list", "--json"], ["--json", "list"]])
def test_the_job_list_read_quickly_is_the_same_bytes_as_from_the_tree(both, jobs, argv):
    as_run, tree, quick_taken = both(*argv)
    assert quick_taken
    assert (as_run.exit_code, as_run.stdout, as_run.stderr) == (tree.exit_code, tree.stdout, tree.stderr)
    assert {job["id"] for job in as_run.json()} == set(jobs.values())


@pytest.mark.parametrize("argv, code", [
    (["retrieve", "ft-no-such-job", "--json"], 6),
    (["events", "no such id", "--json"], 2),
    (["checkpoints", "ft-no-such-job", "--json"], 6),
])
def test_errors_read_quickly_are_the_tree_s_errors(ftctl, both, argv, code):
    ftctl("list")  # the simulator's once-only note, out of the way
    as_run, tree, quick_taken = both(*argv)
    assert quick_taken
    assert (as_run.exit_code, as_run.stdout, as_run.stderr) == (tree.exit_code, tree.stdout, tree.stderr)
    assert as_run.exit_code == code and '"error"' in as_run.stderr


def test_the_simulator_note_comes_once_either_way(both, jobs):
    """The first read of a fresh home says the simulator was chosen; the quick path says it too."""
    import os
    from pathlib import Path

    from ftctl.commands.session import SIM_NOTE_MARKER

    marker = Path(os.environ["FTCTL_HOME"]) / SIM_NOTE_MARKER
    marker.unlink(missing_ok=True)
    as_run, _, quick_taken = both("list", "--json")
    assert quick_taken and "Note: using the embedded simulator" in as_run.stderr


@pytest.mark.parametrize("argv", [
    ["retrieve", "ft-x", "--json", "--debug"],  # another flag: the tree parses it
    ["retrieve", "ft-x"],  # the human view
    ["list", "--json", "--limit", "1"],
    ["events", "ft-x", "--json", "--type", "refund"],
    ["retrieve", "--json"],  # no id: the tree's usage error
    ["retrieve", "ft-x", "ft-y", "--json"],
    ["metrics", "ft-x", "--json"],
])
def test_any_other_line_goes_through_the_tree(argv):
    assert quick.answer(argv, None) is None
