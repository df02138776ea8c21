"""Issue 15: the heavy paths do less work, and what they print is unchanged. The speed itself is
measured by benchmarks/run.py; these tests pin the behaviour the shortcuts must keep: a listing
copied as stored text is the same JSON, the recent-jobs cache keeps what it kept, list answers
checked without pydantic are the ones pydantic accepts, and over HTTP ``metrics`` does not fetch
the job with its event log."""

from __future__ import annotations

import json
import os
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kit import BASE, MODEL
from served import TOKEN, served

from ftctl.local_state import KEEP, LocalState
from ftctl.models import Checkpoint, Event, Job, MetricsRow, ResponseError, check_list
from ftctl.shapes import SHAPES, plainly_valid
from ftctl.wire import Encoded, LazyEncoded, dumps, write


def create(ftctl, *extra: str) -> str:
    result = ftctl(*BASE, "--n-evals", "4", "--early-stopping", "-q", *extra)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


# -- text carried, not re-encoded ------------------------------------------------------------------

TEXT = '{"id":"ft-1","status":"completed","n":[1,2.5,"NaN"],"s":"caf\u00e9"}'


def test_a_lazy_object_is_the_dict_its_text_says_whichever_way_it_is_read():
    expected = json.loads(TEXT)
    for read in (lambda d: dict(d), lambda d: {**d}, lambda d: list(d.items()), lambda d: d["status"],
                 lambda d: d.get("id"), lambda d: "n" in d, lambda d: len(d), lambda d: d == expected,
                 lambda d: sorted(d), lambda d: d.copy()):
        assert read(LazyEncoded(TEXT)) == read(expected)
    assert bool(LazyEncoded("{}")) is False and bool(LazyEncoded(TEXT)) is True


@pytest.mark.parametrize("value", [
    [LazyEncoded(TEXT), {"id": "ft-2", "x": float("nan")}, LazyEncoded(TEXT)],
    {"data": [LazyEncoded(TEXT), Encoded(TEXT)], "object": "list"},
    LazyEncoded(TEXT),
    [],
])
def test_carried_texts_print_the_same_json_as_the_objects(value):
    import io

    plain = _plain(value)
    assert json.loads(dumps(value)) == plain
    out = io.StringIO()
    write(out, value)
    assert json.loads(out.getvalue()) == plain
    assert json.loads(dumps(value, pretty=True)) == plain  # the indented form reads them as dicts


def _plain(value):
    """What the value says, read through the dict methods (which decode a lazy text)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return "NaN" if value != value else value


def test_list_json_prints_each_job_as_retrieve_sees_it(ftctl):
    ids = [create(ftctl) for _ in range(3)]
    listed = ftctl("list", "--json").json()
    assert [job["id"] for job in listed] == ids[::-1]  # newest first
    for job in listed:
        assert job == ftctl("retrieve", job["id"], "--json").json() | {"events": []}
    assert ftctl("list", "--fields", "id,status").json() == [{"id": i, "status": "completed"} for i in ids[::-1]]
    assert ids[0] in ftctl("list").stdout  # the table reads them as dicts


# -- the recent-jobs cache -----------------------------------------------------------------------

def test_a_listing_that_changes_nothing_does_not_rewrite_the_cache(ftctl, ftctl_home):
    create(ftctl)
    ftctl("list", "--json")
    cache = ftctl_home / "jobs.json"
    before = (cache.stat().st_mtime_ns, cache.stat().st_ino, cache.read_text())
    assert ftctl("list", "--json").exit_code == 0
    assert (cache.stat().st_mtime_ns, cache.stat().st_ino, cache.read_text()) == before


def test_a_long_listing_remembers_the_newest_jobs(tmp_path):
    state = LocalState(tmp_path)
    jobs = [{"id": f"ft-{i:05d}", "status": "completed", "created_at": f"2026-01-01T00:00:{i // 100:02d}.{i % 100:03d}Z"}
            for i in range(KEEP + 500)][::-1]  # newest first, as a listing comes
    from ftctl.jobs import Service

    class Listing:
        name = "sim"

        def list(self):
            return jobs

    Service("sim", lambda _: Listing(), state).list()
    assert [j["id"] for j in state.recent()] == [j["id"] for j in jobs[:KEEP]]


# -- list answers checked by a plain loop ----------------------------------------------------------

plain_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                          max_leaves=6)
row_values = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4) | st.just("1.5")


@settings(max_examples=300, deadline=None)
@given(model=st.sampled_from([Event, Checkpoint, MetricsRow]),
       items=st.lists(st.one_of(
           st.dictionaries(st.sampled_from(["step", "train/loss", "eval/loss", "type", "message", "path",
                                            "train/global_step", "level", "created_at", "x"]), row_values),
           plain_json), max_size=4))
def test_the_plain_check_passes_only_what_pydantic_accepts(model, items):
    if plainly_valid(model.__name__, items):
        for item in items:
            model.model_validate(item)
    try:
        checked = check_list(model, {"data": items}, "data", "x")
    except ResponseError:
        assert not plainly_valid(model.__name__, items)
    else:
        assert checked is items  # the wire objects, unchanged


@pytest.mark.parametrize("model", [Job, Event, Checkpoint, MetricsRow])
def test_the_plain_shapes_are_the_models_fields(model):
    """ftctl.shapes restates the models without pydantic: same fields, same wire names, the same
    (or narrower) types, required where the model requires."""
    import typing

    plain = {str: str, int: int, float: float, bool: bool}
    expected = {}
    for name, info in model.model_fields.items():
        args = [a for a in typing.get_args(info.annotation) or (info.annotation,) if a is not type(None)]
        if typing.get_origin(args[0]) is list:
            expected[info.alias or name] = ("list", typing.get_args(args[0])[0].__name__)
            continue
        types = {dict if typing.get_origin(a) is dict else plain[a] for a in args}
        if float in types:
            types.add(int)  # a whole number is a valid float
        if not info.is_required():
            types.add(type(None))
        expected[info.alias or name] = types
    shape = SHAPES[model.__name__]
    assert {k: v if v[0] == "list" else set(v) for k, v in shape.items()} == expected


@settings(max_examples=200, deadline=None)
@given(job=st.fixed_dictionaries({"id": st.text(max_size=4), "status": st.text(max_size=4)},
                                 optional={k: row_values | st.dictionaries(st.text(max_size=3), row_values, max_size=2)
                                           for k in ("batch_size", "lr_scheduler", "early_stopped", "n_evals",
                                                     "learning_rate", "progress")}))
def test_a_plainly_valid_job_is_one_pydantic_accepts(job):
    if plainly_valid("Job", [job]):
        Job.model_validate(job)


# -- over HTTP: fetch only what is shown -----------------------------------------------------------

def test_metrics_over_http_does_not_fetch_the_job_with_its_event_log(ftctl_proc, tmp_path):
    with served(tmp_path / "served", args=()) as server:
        env = {"TOGETHER_API_KEY": TOKEN, "TOGETHER_BASE_URL": server.url, "FTCTL_BACKEND": "together"}
        made = ftctl_proc(*BASE, "--n-evals", "6", "--early-stopping", "-q", env=env)
        assert made.exit_code == 0, made.stderr
        job_id = made.stdout.strip()
        shown = ftctl_proc("metrics", job_id, "--json", env=env)
        assert shown.exit_code == 0, shown.stderr
        assert len(json.loads(shown.stdout)["evaluations"]) == 6
        log = server.logged(f"/v1/fine-tunes/{job_id}/metrics")
    assert f"GET /v1/fine-tunes/{job_id}/metrics" in log
    assert f"GET /v1/fine-tunes/{job_id} " not in log  # the job came from the list, without its events


def test_plain_answers_over_http_never_import_pydantic(ftctl_proc, tmp_path):
    """The HTTP backend checks plainly valid answers itself; pydantic is for the unusual ones."""
    import subprocess
    import sys as system

    with served(tmp_path / "served", args=()) as server:
        env = {**os.environ, "TOGETHER_API_KEY": TOKEN, "TOGETHER_BASE_URL": server.url, "FTCTL_BACKEND": "together"}
        job_id = ftctl_proc(*BASE, "--n-evals", "6", "--early-stopping", "-q", env=env).stdout.strip()
        for args in (["retrieve", job_id, "--json"], ["list", "--json"], ["events", job_id, "--json"],
                     ["metrics", job_id, "--json"], ["checkpoints", job_id, "--json"]):
            proc = subprocess.run([system.executable, "-X", "importtime", "-m", "ftctl", *args], env=env,
                                  capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0, proc.stderr[-500:]
            imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if "|" in line}
            assert "httpx" in imported and "pydantic" not in imported and "ftctl.models" not in imported, args


def test_a_listing_decodes_only_the_jobs_the_cache_does_not_know_as_finished(ftctl, ftctl_home, monkeypatch):
    from ftctl import wire

    first = create(ftctl)
    ftctl("list", "--json")  # the cache now knows it as completed
    second = create(ftctl)
    import json as json_module

    (ftctl_home / "jobs.json").write_text(json_module.dumps(  # forget the second job
        {"version": 1, "jobs": [j for j in json_module.loads((ftctl_home / "jobs.json").read_text())["jobs"]
                                if j["id"] != second]}))
    decoded = []
    original = wire.LazyEncoded.load
    monkeypatch.setattr(wire.LazyEncoded, "load", lambda self: decoded.append(self.id) or original(self))
    assert [j["id"] for j in ftctl("list", "--json").json()] == [second, first]
    assert decoded == [second]  # the known finished job was copied and skipped, never decoded
    assert {j["id"] for j in json_module.loads((ftctl_home / "jobs.json").read_text())["jobs"]} == {first, second}


@pytest.mark.parametrize("preset", ["nan", "diverging", "improving"])
@pytest.mark.parametrize("fraction", [0.0, 0.37, 1.0])
def test_the_simulators_eval_columns_are_its_eval_rows(tmp_path, preset, fraction):
    """``metrics`` on the simulator hands the reading its eval rows as two columns; they must be
    the rows themselves, at any instant of the run and with non-finite values."""
    from ftctl.analysis import analyse, eval_points
    from ftctl.backends.simulator.backend import Simulator
    from ftctl.backends.simulator.scenarios import load
    from ftctl.wire import MetricsQuery

    now = [1000.0]
    sim = Simulator(tmp_path, speed=50.0, clock=lambda: now[0], scenario=load(preset))
    job = sim.create({"model": MODEL, "training_file": "file-train", "validation_file": "file-val", "n_epochs": 2,
                      "n_evals": 40, "early_stopping_enabled": True, "early_stopping_patience": 3})
    now[0] += fraction * 60
    rows = sim.metrics(job["id"])
    assert rows.eval_columns is not None
    fast, slow = eval_points(rows), eval_points(list(rows))
    assert repr(fast) == repr(slow)  # repr: NaN equals NaN
    assert repr(analyse(job, rows).evaluations) == repr(analyse(job, list(rows)).evaluations)
    assert sim.metrics(job["id"], MetricsQuery(global_step_from=3)).eval_columns is None  # filtered: rows only


@settings(max_examples=300, deadline=None)
@given(job=st.fixed_dictionaries({"id": st.text(max_size=4), "status": st.text(max_size=4)},
                                 optional={k: row_values | st.dictionaries(st.text(max_size=3), row_values, max_size=2)
                                           | st.lists(row_values, max_size=2)
                                           for k in ("batch_size", "lr_scheduler", "early_stopped", "n_evals",
                                                     "learning_rate", "progress", "events", "steps_completed",
                                                     "early_stopping_best_metric")}))
def test_a_job_already_typed_is_what_typed_job_makes_of_it(job):
    from ftctl.models import typed_job
    from ftctl.shapes import already_typed

    quick = already_typed("Job", job)
    if quick is not None:
        assert repr(quick) == repr(typed_job(job))
