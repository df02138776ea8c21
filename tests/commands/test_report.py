"""`ftctl report` (Markdown, JUnit, GitHub annotations) and what a wait writes in GitHub Actions,
through the CLI, with the outputs parsed as their readers parse them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kit import BASE, WORKED
MIB = 1024 * 1024


def create(ftctl, *args, env=None) -> str:
    result = ftctl(*BASE, *args, "-q", env=env)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def worked(ftctl, scenario_file, *extra, env=None) -> str:
    return create(ftctl, "--n-epochs", "5", "--n-evals", "10", "--early-stopping", "--sim-scenario",
                  scenario_file(WORKED, steps_per_epoch=24), *extra, env=env)


# --- a small reader of the Mermaid block, as a reader of the chart sees it ------------------------

def mermaid_blocks(markdown: str) -> list[str]:
    return re.findall(r"```mermaid\n(.*?)\n```", markdown, re.S)


def parse_xychart(block: str) -> dict:
    """The chart's kind, title, x-axis categories, y range and series (``line``/``bar``, in order)."""
    lines = [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("%%")]
    chart: dict = {"kind": lines[0], "series": []}
    for line in lines[1:]:
        keyword, _, rest = line.partition(" ")
        if keyword == "title":
            chart["title"] = json.loads(rest)
        elif keyword == "x-axis":
            title, _, items = rest.partition(" [")
            chart["x_title"] = json.loads(title)
            chart["x"] = [json.loads(item) for item in items.rstrip("]").split(", ")]
        elif keyword == "y-axis":
            m = re.fullmatch(r'"(.*)" (\S+) --> (\S+)', rest)
            chart["y"] = (float(m.group(2)), float(m.group(3)))
        elif keyword in ("line", "bar"):
            chart["series"].append((keyword, [float(v) for v in rest.strip("[]").split(", ")]))
        else:
            raise AssertionError(f"unexpected line in the chart: {line!r}")
    return chart


def marked_steps(chart: dict, series: list[float]) -> list[int]:
    """The steps where a bar series stands above the axis' bottom."""
    return [int(x) for x, v in zip(chart["x"], series) if v > chart["y"][0]]


def test_markdown_for_the_worked_example_charts_its_history_with_best_48_and_halt_72(ftctl, scenario_file):
    job_id = worked(ftctl, scenario_file)
    result = ftctl("report", job_id, "--format", "markdown")
    assert result.exit_code == 0, result.stderr
    md = result.stdout
    heading = md.splitlines()[0]
    assert heading.startswith("## ") and job_id in heading and "completed" in heading
    assert "early stopped at step 72" in heading
    assert "| best eval_loss | 0.4213 at step 48 |" in md and "| halt step | 72 |" in md
    assert "| steps run | 72 of 120 (48 refunded) |" in md
    assert "| early stopping | patience 2 · min_delta 0.0 · warmup 1 (recorded) |" in md
    (block,) = mermaid_blocks(md)
    chart = parse_xychart(block)
    assert chart["kind"] == "xychart-beta"
    assert [int(x) for x in chart["x"]] == [12, 24, 36, 48, 60, 72]
    (line,) = [values for kind, values in chart["series"] if kind == "line"]
    assert line == WORKED[:6]  # the job's eval_loss values, as recorded
    best, halt = [values for kind, values in chart["series"] if kind == "bar"]
    assert marked_steps(chart, best) == [48] and marked_steps(chart, halt) == [72]
    assert "best 0.4213 at step 48" in chart["title"] and "halted at step 72" in chart["title"]
    assert "green bar: the best (step 48); red bar: the halt (step 72)" in md
    assert "Early stopping fired at step 72" in md  # the explanation
    assert re.search(r"<details><summary>Events \(\d+\)</summary>", md) and "early_stopped" in md


def test_a_100000_evaluation_job_reports_under_1_mib_with_at_most_100_points(ftctl):
    job_id = create(ftctl, "--n-evals", "100000", "--early-stopping", "--sim-scenario", "improving")
    history = {e["step"]: e["eval_loss"] for e in ftctl("metrics", job_id, "--json").json()["evaluations"]}
    assert len(history) == 100000
    md = ftctl("report", job_id).stdout
    assert len(md.encode()) < MIB
    (block,) = mermaid_blocks(md)
    chart = parse_xychart(block)
    steps = [int(x) for x in chart["x"]]
    assert len(steps) <= 100 and steps == sorted(steps)
    (line,) = [values for kind, values in chart["series"] if kind == "line"]
    assert all(history[s] == v for s, v in zip(steps, line))  # every point is one of the job's values
    best = ftctl("retrieve", job_id, "--json").json()["early_stopping_best_step"]
    assert best in steps and steps[0] == min(history) and steps[-1] == max(history)
    assert f"{len(steps)} of 100000 evaluations drawn" in md
    assert "events not shown" in md  # 100,000 events, cut to the first and the last


def test_markdown_of_several_jobs_has_a_section_each_and_a_comparison(ftctl, scenario_file, tmp_path):
    a = worked(ftctl, scenario_file)
    b = worked(ftctl, scenario_file, "--patience", "1")
    saved = tmp_path / "saved.json"
    saved.write_text(ftctl("metrics", a, "--json").stdout)
    out = tmp_path / "report.md"
    result = ftctl("report", a, b, "--from-file", str(saved), "-o", str(out))
    assert result.exit_code == 0 and result.stdout == ""
    md = out.read_text()
    assert len(mermaid_blocks(md)) == 3 and "## Comparison" in md
    rows = [line for line in md.splitlines() if line.startswith(f"| {b} |")]
    assert rows and "| 1 |" in rows[0] and "| 60 |" in rows[0]


def test_report_from_a_saved_file_needs_no_backend(ftctl, scenario_file, tmp_path):
    saved = tmp_path / "saved.json"
    saved.write_text(ftctl("metrics", worked(ftctl, scenario_file), "--json").stdout)
    result = ftctl("report", "--from-file", str(saved), env={"FTCTL_BACKEND": "together",
                                                            "TOGETHER_BASE_URL": "http://127.0.0.1:9"})
    assert result.exit_code == 0, result.stderr
    assert "halted at step 72" in result.stdout


def test_bad_format_and_output_directory_are_exit_2_before_any_fetch(ftctl, tmp_path):
    result = ftctl("report", "ft-nothere", "--format", "html")
    assert result.exit_code == 2 and "--format must be markdown, junit or github (got 'html')" in result.stderr
    result = ftctl("report", "ft-nothere", "-o", str(tmp_path / "no" / "r.md"))
    assert result.exit_code == 2 and "does not exist" in result.stderr


# --- JUnit, read by a real JUnit reader --------------------------------------------------------------

def test_junit_has_a_passing_case_for_a_completed_job_and_a_failing_one_for_a_failed_job(ftctl, scenario_file,
                                                                                      tmp_path):
    from junitparser import Failure, JUnitXml, Properties

    ok = worked(ftctl, scenario_file)
    bad = create(ftctl, "--n-evals", "10", "--early-stopping", "--sim-scenario", "error")
    target = tmp_path / "results.xml"
    assert ftctl("report", ok, bad, "--format", "junit", "-o", str(target)).exit_code == 0
    xml = JUnitXml.fromfile(str(target))
    cases = {case.name: case for suite in xml for case in suite}
    assert set(cases) == {ok, bad}
    assert cases[ok].is_passed
    assert not cases[bad].is_passed
    (failure,) = cases[bad].result
    assert isinstance(failure, Failure) and "ended error" in failure.message and "out of memory" in failure.message
    props = {p.name: p.value for p in cases[ok].child(Properties)}
    assert props["fired"] == "true" and props["best_step"] == "48" and props["halt_step"] == "72"
    assert props["steps_refunded"] == "48" and props["patience"] == "2"
    strict = ftctl("report", ok, "--format", "junit", "--fail-on-early-stop").stdout
    (case,) = [c for suite in JUnitXml.fromstring(strict) for c in suite]
    assert not case.is_passed and "early stopped at step 72" in case.result[0].message


# --- GitHub workflow commands --------------------------------------------------------------------------

def test_github_annotations_escape_what_the_runner_requires():
    from ftctl.output.annotations import command

    assert command("error", "ftctl a:b,c", "50% done\r\nnext") == "::error title=ftctl a%3Ab%2Cc::50%25 done%0D%0Anext"


def test_github_format_a_notice_for_completed_an_error_for_failed_a_warning_for_non_finite(ftctl, scenario_file):
    ok = worked(ftctl, scenario_file)
    bad = create(ftctl, "--n-evals", "10", "--early-stopping", "--sim-scenario", "error")
    nan = create(ftctl, "--n-evals", "10", "--early-stopping", "--sim-scenario", "nan")
    lines = ftctl("report", ok, bad, nan, "--format", "github").stdout.splitlines()
    assert lines[0].startswith(f"::notice title=ftctl {ok}::{ok} completed: early stopped at step 72")
    assert lines[1].startswith(f"::error title=ftctl {bad}::{bad} ended error: Training failed")
    assert any(line.startswith(f"::warning title=ftctl {nan}::{nan} halted on a non-finite eval_loss")
               for line in lines[2:])


# --- in GitHub Actions, without asking ----------------------------------------------------------------

def actions_env(tmp_path: Path, **extra) -> dict:
    return {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"), **extra}


def test_create_wait_in_actions_writes_the_summary_and_prints_the_annotations(ftctl, scenario_file, tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step content\n")
    result = ftctl(*BASE, "--n-epochs", "5", "--n-evals", "10", "--early-stopping", "--sim-scenario",
                   scenario_file(WORKED, steps_per_epoch=24), "--wait", env=actions_env(tmp_path))
    assert result.exit_code == 0, result.stderr
    md = summary.read_text()
    assert md.startswith("# earlier step content\n")  # appended, never replaced
    chart = parse_xychart(mermaid_blocks(md)[0])
    assert [int(x) for x in chart["x"]][-1] == 72
    notices = [line for line in result.stdout.splitlines() if line.startswith("::notice ")]
    assert len(notices) == 1 and "early stopped at step 72" in notices[0]


def test_create_wait_of_a_failed_job_in_actions_reports_it_and_still_exits_5(ftctl, tmp_path):
    result = ftctl(*BASE, "--n-evals", "10", "--early-stopping", "--sim-scenario", "error", "--wait",
                   env=actions_env(tmp_path))
    assert result.exit_code == 5
    assert "## ❌" in (tmp_path / "summary.md").read_text()
    assert any(line.startswith("::error ") and "out of memory" in line for line in result.stdout.splitlines())


def test_a_wait_that_times_out_in_actions_reports_the_job_as_still_running(ftctl, scenario_file, tmp_path,
                                                                           sim_time):
    job_id = worked(ftctl, scenario_file, env={"FTCTL_SIM_SPEED": "1"})
    result = ftctl("wait", job_id, "--timeout", "30", env={"FTCTL_SIM_SPEED": "1", **actions_env(tmp_path)})
    assert result.exit_code == 3
    md = (tmp_path / "summary.md").read_text()
    assert md.startswith("## ⏳") and job_id in md.splitlines()[0]
    assert any(line.startswith("::warning ") and "still running" in line for line in result.stdout.splitlines())


def test_under_json_stdout_stays_strict_json_and_the_summary_is_still_written(ftctl, scenario_file, tmp_path):
    result = ftctl(*BASE, "--n-evals", "10", "--early-stopping", "--sim-scenario", "plateau", "--wait", "--json",
                   env=actions_env(tmp_path))
    assert result.exit_code == 0
    assert result.json()["status"] == "completed"  # no workflow command mixed into the data
    assert "--format github" in result.stderr
    assert "xychart-beta" in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize("off", [["--no-ci-report"], []])
def test_the_flag_or_the_env_var_turns_the_ci_report_off(ftctl, tmp_path, off):
    env = actions_env(tmp_path, **({} if off else {"FTCTL_NO_CI_REPORT": "1"}))
    result = ftctl(*BASE, "--n-evals", "10", "--early-stopping", "--sim-scenario", "plateau", "--wait", *off, env=env)
    assert result.exit_code == 0
    assert not (tmp_path / "summary.md").exists()
    assert "::" not in result.stdout


def test_outside_actions_a_wait_writes_no_summary_and_no_annotation(ftctl, tmp_path):
    result = ftctl(*BASE, "--n-evals", "10", "--early-stopping", "--sim-scenario", "plateau", "--wait")
    assert result.exit_code == 0 and "::notice" not in result.stdout


# --- wait on several jobs -----------------------------------------------------------------------------

def test_wait_on_several_jobs_exits_with_the_worst_outcome(ftctl, scenario_file, sim_time):
    ok = worked(ftctl, scenario_file, env={"FTCTL_SIM_SPEED": "10"})
    ok2 = worked(ftctl, scenario_file, "--patience", "1", env={"FTCTL_SIM_SPEED": "10"})
    result = ftctl("wait", ok, ok2, env={"FTCTL_SIM_SPEED": "10"})
    assert result.exit_code == 0, result.stderr
    for job_id in (ok, ok2):  # piped: one line per change, each prefixed by its job id
        assert f"{job_id}  completed · step" in result.stderr
        assert any(line.startswith(job_id + "  eval 1 of 10") for line in result.stderr.splitlines())
    out = dict(line.split("  ", 1) for line in result.stdout.splitlines())
    assert out[ok].startswith("early stopped at step 72") and out[ok2].startswith("early stopped at step 60")
    bad = create(ftctl, "--n-evals", "10", "--early-stopping", "--sim-scenario", "error")
    slow = worked(ftctl, scenario_file, env={"FTCTL_SIM_SPEED": "0.1"})
    failed = ftctl("wait", ok, bad, slow, "--timeout", "5", env={"FTCTL_SIM_SPEED": "0.1"})
    assert failed.exit_code == 5 and f"{bad} (error)" in failed.stderr and "1 still running" in failed.stderr
    timed_out = ftctl("wait", ok, slow, "--timeout", "5", "--json", env={"FTCTL_SIM_SPEED": "0.1"})
    assert timed_out.exit_code == 3 and f"ftctl wait {ok} {slow}" not in timed_out.stderr
    assert slow in timed_out.stderr


def test_wait_on_several_jobs_under_json_prints_every_job_at_its_end(ftctl, scenario_file):
    a, b = worked(ftctl, scenario_file), worked(ftctl, scenario_file, "--patience", "1")
    result = ftctl("wait", a, b, "--json")
    assert result.exit_code == 0
    assert [(j["id"], j["steps_completed"]) for j in result.json()] == [(a, 72), (b, 60)]
