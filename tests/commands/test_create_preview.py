"""The price and the plan before the job (issue 13 item 5, issue 16 item 6): create and create
--dry-run show the API's estimate and, for a local training file, the plan of steps; an estimate
that may not proceed stops create (exit 1, nothing created); --json dry runs still print the exact
body; wandb_url shows in retrieve and after wait."""

from __future__ import annotations

import json
from pathlib import Path

from kit import BASE, MODEL
from served import on_the_api

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "train.jsonl"
ES = ["--n-epochs", "5", "--n-evals", "10", "--early-stopping", "--patience", "2"]


def test_dry_run_shows_the_estimate_and_what_a_halt_can_refund(ftctl):
    result = ftctl(*BASE, *ES, "--sim-scenario", "plateau", "--dry-run")
    assert result.exit_code == 0, result.stderr
    # 5 epochs of 24 steps at the simulator's $0.002 a step; a halt at evaluation 3 of 10 at the earliest
    assert "Price: estimated $0.24 (3.9M training tokens); your limit $1,000.00" in result.stderr
    assert "the most a halt can refund (the steps of 7 of 10 evaluations) would be worth $0.17" in result.stderr
    assert "Plan: unknown here: the training file file-train is an id on the server" in result.stderr


def test_json_dry_run_prints_the_exact_body_and_nothing_else_on_stdout(ftctl):
    plain = ftctl(*BASE, *ES, "--dry-run")
    as_json = ftctl(*BASE, *ES, "--dry-run", "--json")
    assert as_json.exit_code == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert body == json.loads(plain.stdout)
    assert body["training_file"] == "file-train" and body["n_epochs"] == 5 and "plan" not in body
    assert "Price: estimated" in as_json.stderr  # the preview is on stderr, whatever the mode


def test_dry_run_shows_the_plan_of_a_local_training_file(ftctl):
    result = ftctl("create", "-t", SAMPLE, "-v", "file-val", "-m", MODEL, *ES, "--batch-size", "1",
                   "--no-packing", "--n-checkpoints", "2", "--dry-run")
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert ("Plan: 50 examples, ~3.8k tokens: 50 steps per epoch x 5 epochs = 250 steps (batch 1, "
            "max_seq_length 8192, no packing)") in lines
    assert "  evaluations: 10, one every 25 steps (steps 25, 50, 75, 100, 125, 150, 175, 200, ... (10 in all))" in lines
    assert "  checkpoints at steps 125, 250 (the last is the final model)" in lines
    assert "  early stopping: the earliest halt is evaluation 3 (step 75); at most 175 of 250 steps refunded" in lines
    # nothing uploaded on a dry run, so nothing the API could price yet
    assert "Price: no estimate (the training file is a local file, priced once uploaded)" in lines
    assert json.loads(result.stdout)["training_file"] == str(SAMPLE)


def test_doubling_a_local_files_examples_doubles_the_planned_steps(ftctl, tmp_path):
    double = tmp_path / "double.jsonl"
    double.write_bytes(SAMPLE.read_bytes() * 2)

    def total(path: Path) -> str:
        result = ftctl("create", "-t", path, "-m", MODEL, "--n-epochs", "3", "--batch-size", "4", "--no-packing",
                       "--dry-run")
        assert result.exit_code == 0, result.stderr
        return next(line for line in result.stderr.splitlines() if line.startswith("Plan:"))

    assert "13 steps per epoch x 3 epochs = 39 steps" in total(SAMPLE)  # ceil(50 / 4) = 13
    assert "25 steps per epoch x 3 epochs = 75 steps" in total(double)  # ceil(100 / 4) = 25


def test_a_create_the_estimate_does_not_allow_stops_and_creates_nothing(ftctl, scenario_file):
    # 600,000 steps at $0.002 = $1,200, above the simulated $1,000 limit
    dear = scenario_file([2.0], steps_per_epoch=600_000)
    result = ftctl(*BASE, "--sim-scenario", dear)
    assert result.exit_code == 1
    assert ("Error: the estimated price ($1,200.00) is more than your credit limit and balance allow "
            "($1,000.00); no job was created") in result.stderr
    assert ftctl("list", "--json").json() == []
    # a dry run shows the same estimate and says so, but is not an error
    dry = ftctl(*BASE, "--sim-scenario", dear, "--dry-run")
    assert dry.exit_code == 0 and "Price: estimated $1,200.00" in dry.stderr
    assert "more than your credit limit and balance allow" in dry.stderr


def test_the_estimate_comes_from_the_api_on_the_together_backend(ftctl, srv):
    api = on_the_api(ftctl, srv.url, "served-key")
    result = api(*BASE, *ES, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "Price: estimated $0.24" in result.stderr
    assert api("list", "--json").json() == []  # asked for a price, created nothing


def test_wandb_url_shows_in_retrieve_and_after_wait(ftctl):
    made = ftctl(*BASE, "--wandb-project-name", "evals", "--wandb-entity", "me", "--wait")
    assert made.exit_code == 0, made.stderr
    job = ftctl("list", "--json").json()[0]
    url = f"https://wandb.ai/me/evals/runs/{job['id'][3:11]}"
    assert url in made.stdout  # the report after the wait
    assert ftctl("retrieve", job["id"], "--json").json()["wandb_url"] == url
    assert f"wandb_url\t{url}" in ftctl("retrieve", job["id"]).stdout.splitlines()
    assert any("W&B" in line and url in line for line in ftctl("retrieve", job["id"], tty=120).stdout.splitlines())
    plain = ftctl(*BASE, "-q")
    assert "wandb_url" not in ftctl("retrieve", plain.stdout.strip(), "--json").json()


def test_a_simulated_jobs_steps_follow_its_training_file(ftctl, tmp_path):
    """Doubling a training file's examples doubles its jobs' steps: uploaded through create -t."""
    double = tmp_path / "double.jsonl"
    double.write_bytes(SAMPLE.read_bytes() * 2)
    shape = ["--n-epochs", "2", "--n-evals", "4", "--batch-size", "4", "--no-packing"]

    def created(training: object, *more: str) -> dict:
        made = ftctl("create", "-t", training, "-v", "file-val", "-m", MODEL, *more, "--json")
        assert made.exit_code == 0, made.stderr
        return made.json()

    small = created(SAMPLE, *shape)
    assert small["total_steps"] == 26  # ceil(50 / 4) = 13 steps per epoch, 2 epochs
    assert created(double, *shape)["total_steps"] == 50  # ceil(100 / 4) = 25
    # the dry run's plan of the same local file says the same
    dry = ftctl("create", "-t", SAMPLE, "-v", "file-val", "-m", MODEL, *shape, "--dry-run")
    assert "13 steps per epoch x 2 epochs = 26 steps" in dry.stderr
    # by id, the uploaded file gives the same; a preset keeps the worked example's shape
    assert created(small["training_file"], *shape)["total_steps"] == 26
    assert created(small["training_file"], *shape, "--sim-scenario", "plateau")["total_steps"] == 48
    # packed, 50 short examples fit one row of 8192 tokens: one step per epoch, floored at an
    # evaluation per step
    assert created(small["training_file"], "--n-epochs", "2", "--n-evals", "4")["total_steps"] == 4
