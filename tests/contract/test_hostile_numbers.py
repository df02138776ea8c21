"""Issue 11, the numbers side: any float an eval_loss can be (±1e308, the largest float, 1e-300,
subnormals, ±inf and NaN mixed in) renders in the chart, the table, the explanation, the live lines
and the PNG/SVG plot, from a scenario (the simulator as the server) and from ``--from-file``; and
the smaller inputs that used to end in an internal error (what-if settings, --from-file files,
--plot targets, a lost settings record).

Families (parametrised, so ``pytest -v`` counts tries and failures per family): ``test_values_*``
(value family × command), ``test_plot_*``, ``test_what_if_*``, ``test_from_file_*``.
"""

from __future__ import annotations

import errno
import json
import math
import re

import pytest

BASE = ["create", "-t", "file-train", "-v", "file-val", "-m", "Qwen/Qwen3.5-9B"]
MAX = 1.7976931348623157e308
FAMILIES = {
    "huge": [1.0, 1e80, 0.5, 0.4, 0.6, 0.7, 0.8, 0.9],
    "huge-range": [0.0, 1e200, 0.5, 0.4, 0.6, 0.7, 0.8, 0.9],
    "both-extremes": [1.0, 1e308, -1e308, 0.4, 0.6, 0.7, 0.8, 0.9],
    "largest-float": [MAX, -MAX, MAX, 0.4, 0.6, 0.7, 0.8, 0.9],
    "flat-largest": [MAX, MAX, MAX, MAX],
    "flat-negative-huge": [-1e308, -1e308, -1e308, -1e308],
    "tiny": [1e-300, 2e-300, 3e-300, 4e-300, 5e-300, 6e-300],
    "subnormal": [5e-324, 0.0, 5e-324, 1e-320, 0.0, -5e-324],
    "tiny-and-one": [1.0, 1e-300, 5e-324, 0.4, 0.6, 0.7, 0.8, 0.9],
    "huge-then-nan": [1e200, 0.0, 0.5, "NaN", 0.3, 0.2],
    "huge-then-inf": [1e300, -1e300, "Infinity", 0.3, 0.2, 0.1],
    "negative-inf": [1.0, "-Infinity", 0.5, 0.4],
    "all-non-finite": ["NaN", "Infinity", "-Infinity", "NaN"],
}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _float(v) -> float:
    return float(v.replace("Infinity", "inf")) if isinstance(v, str) else v


@pytest.fixture
def job_for(ftctl, scenario_file):
    def create(values) -> str:
        result = ftctl(*BASE, "--n-evals", str(len(values)), "--early-stopping", "--sim-scenario",
                       scenario_file(values, steps_per_epoch=3 * len(values)), "-q")
        assert result.exit_code == 0, result.stderr
        return result.stdout.strip()

    return create


def _chart_labels(out: str) -> list[float]:
    """The y-axis labels of the first chart, top to bottom."""
    labels = []
    for line in ANSI.sub("", out).splitlines():
        m = re.match(r"^\s*(\S+) [┤+]", line)
        if m:
            labels.append(float(m.group(1)))
        if line.lstrip().startswith(("└", "+-")):
            break
    return labels


def _assert_rendered(result, *, width: int = 100) -> None:
    assert result.exit_code == 0, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    plain = ANSI.sub("", result.stdout)
    chart = plain.split("\n\n")[0].splitlines() if "└" in plain or "+-" in plain else []
    for line in chart:
        assert len(line) <= width, line
    labels = _chart_labels(result.stdout)
    assert labels == sorted(labels, reverse=True), labels  # the axis reads downwards, whatever the scale


COMMANDS = ["metrics", "metrics-terminal", "metrics-ascii", "explain", "wait", "from-file", "json"]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_values_any_float_renders(ftctl, job_for, tmp_path, family, command):
    values = FAMILIES[family]
    job_id = job_for(values)
    if command == "metrics":
        result = ftctl("metrics", job_id)
        _assert_rendered(result)
        assert "(no evaluations yet)" in result.stdout or "└" in result.stdout
    elif command == "metrics-terminal":
        result = ftctl("metrics", job_id, "--color", "always", tty=80)
        _assert_rendered(result, width=80)
    elif command == "metrics-ascii":
        from ftctl.output import chart

        analysis_json = ftctl("metrics", job_id, "--json").json()
        evaluations = analysis_json["evaluations"]
        steps = [e["step"] for e in evaluations]
        losses = [_float(e["eval_loss"]) for e in evaluations]
        for width, height in ((30, 3), (100, 15), (300, 40)):
            drawn = chart.render(steps, losses, width=width, height=height, unicode=False,
                                 train=[(s, v) for s, v in zip(steps, losses)])
            assert all(len(line) <= max(width, chart.MIN_WIDTH) for line in drawn.lines())
            "\n".join(drawn.lines()).encode("ascii")
    elif command == "explain":
        result = ftctl("explain", job_id)
        assert result.exit_code == 0 and "internal error" not in result.stderr, result.stderr
        assert all(len(word) <= 40 for word in result.stdout.split()), result.stdout  # no 309-digit thresholds
    elif command == "wait":
        result = ftctl("wait", job_id)  # the job has ended: wait must say so and exit 0, as a CI step would
        _assert_rendered(result)
        for line in result.stderr.splitlines():
            assert all(len(word) <= 40 for word in line.split()), line
    elif command == "from-file":
        saved = tmp_path / "raw.json"
        rows = [{"train/global_step": 3 * i + 3, "eval/loss": _float(v)} for i, v in enumerate(values)]
        saved.write_text(json.dumps({"metrics": rows}))
        result = ftctl("metrics", "--from-file", saved)
        _assert_rendered(result)
        assert ftctl("explain", "--from-file", saved, "--min-delta", "0,1e-300,1e300").exit_code == 0
    else:
        result = ftctl("metrics", job_id, "--json")
        assert result.exit_code == 0
        assert [_float(e["eval_loss"]) for e in result.json()["evaluations"]][:2] == \
            [_float(v) for v in values][:2] or any(not math.isfinite(_float(v)) for v in values)


def test_values_wait_exits_0_in_a_real_process_after_the_job_ended(ftctl_proc, scenario_file):
    """The CI step of the finding: `ftctl wait` on a finished job with ±1e308 in its history."""
    values = FAMILIES["both-extremes"]
    job_id = ftctl_proc(*BASE, "--n-evals", str(len(values)), "--early-stopping", "--sim-scenario",
                        scenario_file(values), "-q").stdout.strip()
    result = ftctl_proc("wait", job_id)
    assert result.exit_code == 0, result.stderr
    assert "eval_loss -1e+308" in result.stdout and "internal error" not in result.stderr


def test_values_thresholds_print_exactly_but_compactly():
    from ftctl import early_stopping as es
    from ftctl.output.numbers import exact_text

    assert exact_text(es.exact_difference(-1e308, 0.0)) == "-1e+308"
    assert exact_text(es.exact_difference(1e-300, 0.0)) == "1e-300"
    assert exact_text(es.exact_difference(0.4213, 0.0)) == "0.4213"
    assert exact_text(es.exact_difference(0.5, 0.1)) == "0.4"
    assert exact_text(es.exact_difference(1e300, 1e-300)).startswith("~1.0000000000000000e+300")


# -- the image ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", ["png", "svg"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_plot_any_float_draws(ftctl, tmp_path, family, suffix):
    pytest.importorskip("matplotlib")
    rows = [{"train/global_step": 3 * i + 3, "eval/loss": _float(v)} for i, v in enumerate(FAMILIES[family])]
    saved = tmp_path / "raw.json"
    saved.write_text(json.dumps({"metrics": rows}))
    target = tmp_path / f"chart.{suffix}"
    result = ftctl("metrics", "--from-file", saved, "--plot", target, "--json")
    assert result.exit_code == 0, result.stderr
    head = target.read_bytes()[:8]
    assert head.startswith(b"\x89PNG") if suffix == "png" else head.startswith(b"<?xml")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("name, message", [
    ("d.png", "is a directory"),
    (".png", "must end in .png or .svg"),
    ("chart.PNG.txt", "must end in .png or .svg"),
    ("missing-dir/chart.png", "does not exist"),
])
def test_plot_target_checked_before_anything_is_fetched(ftctl, tmp_path, name, message):
    (tmp_path / "d.png").mkdir()
    result = ftctl("metrics", "ft-00000000-0000-0000-0000-000000000000", "--plot", tmp_path / name)
    assert result.exit_code == 2
    assert message in result.stderr and "not found" not in result.stderr


def test_plot_a_failed_write_leaves_the_previous_file_whole(ftctl, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    saved = tmp_path / "raw.json"
    saved.write_text(json.dumps({"metrics": [{"train/global_step": 3, "eval/loss": 1.0}]}))
    target = tmp_path / "chart.png"
    target.write_bytes(b"the previous chart")

    def full_disk(self, f, **kwargs):
        f.write(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", full_disk)
    result = ftctl("metrics", "--from-file", saved, "--plot", target)
    assert result.exit_code == 1
    assert result.problems == [f"Error: --plot {target}: could not write the file (No space left on device)"]
    assert target.read_bytes() == b"the previous chart"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chart.png", "raw.json"]


# -- what-if settings --------------------------------------------------------------------------------

@pytest.mark.parametrize("option, value, code, message", [
    ("--patience", str(10 ** 12), 0, "With patience 1000000000000"),
    ("--patience", "9" * 40, 0, "would not have stopped"),
    ("--warmup-evals", str(10 ** 20), 0, "would not have stopped"),
    ("--patience", "10**12", 2, "--patience takes integers"),
    ("--patience", "١٢", 2, "--patience takes integers"),
    ("--patience", "9" * 5000, 2, "--patience takes integers"),
    ("--patience", "-3", 2, "must be >= 1"),
    ("--min-delta", "1e400", 2, "--min-delta 1e400 is beyond the largest number"),
    ("--min-delta", "-1", 2, "must be >= 0"),
    ("--min-delta", "nan", 2, "must be >= 0"),
    ("--min-delta", "inf", 2, "must be finite"),
    ("--min-delta", "1e308", 0, "min_delta 1e+308"),
    ("--min-delta", "5e-324", 0, "min_delta 5e-324"),
])
def test_what_if_out_of_range_settings(ftctl, job_for, option, value, code, message):
    job_id = job_for(FAMILIES["both-extremes"])
    result = ftctl("explain", job_id, option, value)
    assert result.exit_code == code, result.stderr
    assert message in " ".join((result.stdout if code == 0 else result.stderr).split())
    assert "internal error" not in result.stderr
    if code:
        assert len(result.problems) == 1


# -- --from-file inputs ------------------------------------------------------------------------------

FILES = {
    "a directory": (None, "Is a directory"),
    "binary": (bytes(range(256)) * 4, "is not UTF-8 text"),
    "deeply nested": ("[" * 100_000 + "]" * 100_000, "nests JSON too deeply"),
    "a 5000-digit integer": ('{"metrics": [{"train/global_step": 1' + "0" * 5000 + ', "eval/loss": 1}]}',
                             "holds a number too long to read"),
    "wrong types": (json.dumps({"metrics": [{"train/global_step": "x", "eval/loss": [1]}]}), None),
    "a list of numbers": (json.dumps([1, 2]), "is not a saved history"),
    "huge numbers": ('{"metrics": [{"train/global_step": 3, "eval/loss": 1e999}, '
                     '{"train/global_step": 1e300, "eval/loss": -1e999}]}', None),
    "huge steps": (json.dumps({"metrics": [{"train/global_step": 2 ** 70, "eval/loss": 1.0},
                                           {"train/global_step": 3, "eval/loss": 0.5}]}), None),
    "strings where numbers go": (json.dumps({"job_id": "x", "evaluations": [{"eval": 1, "step": 3, "eval_loss": 1}],
                                             "early_stopping": {"patience": "x", "total_steps": "y"}}), None),
}


@pytest.mark.parametrize("command", ["metrics", "explain"])
@pytest.mark.parametrize("kind", list(FILES))
def test_from_file_hostile_inputs(ftctl, tmp_path, kind, command):
    content, message = FILES[kind]
    path = tmp_path / "saved"
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    result = ftctl(command, "--from-file", path)
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    if message is None:
        assert result.exit_code in (0, 2), result.stderr
    else:
        assert result.exit_code == 2
        assert len(result.problems) == 1 and message in result.problems[0], result.problems


# -- a lost settings record --------------------------------------------------------------------------

def test_a_lost_settings_record_is_said_not_blamed_on_the_server(ftctl, scenario_file, monkeypatch):
    """jobs.json could not be written at create (a full disk): explain assumes the server's defaults,
    says so, and reads a disagreement as "other settings", not as the server being wrong."""
    from ftctl.local_state import LocalState

    def full_disk(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(LocalState, "_write", full_disk)
    losses = [1.0, 0.9, 0.95, 0.96, 0.97, 0.5, 0.4, 0.3, 0.2, 0.1]  # patience 4 never fires; 2 would
    created = ftctl(*BASE, "--n-evals", "10", "--early-stopping", "--patience", "4", "-q",
                    "--sim-scenario", scenario_file(losses))
    assert created.exit_code == 0, created.stderr
    result = ftctl("explain", created.stdout.strip())
    assert result.exit_code == 0
    out = " ".join(result.stdout.split())  # unwrapped
    assert "the server's defaults, assumed" in out
    assert "a replay with the assumed default settings says it would have" in out
    assert "most likely ran with other settings" in result.stderr
    assert "the server and the replay disagree" not in result.stdout + result.stderr
    again = ftctl("explain", created.stdout.strip(), "--patience", "4")
    assert "this run would not have stopped" in " ".join(again.stdout.split())
