"""A simulated job as a pure function of time.

``make_plan`` fixes everything at creation: the schedule (``total_steps = n_epochs ×
steps_per_epoch``, evaluation ``i`` at ``round(i × total_steps / n_evals)``), the loss curve, and
where the run ends, found by feeding the early-stopping rule one evaluation at a time, as a trainer
would. ``Phases`` places each status on the wall clock at ``speed`` steps per second; the job
object, its events, metrics and checkpoints at any instant are read off those two. Costs grow with
the number of evaluations, never with the number of steps.
"""

from __future__ import annotations

import bisect
import json
import math
import re
import time
from functools import cached_property, lru_cache
from operator import itemgetter
from itertools import repeat
from typing import Any, Callable, Iterable, Iterator, Sequence

from ftctl import early_stopping as es
from ftctl.wire import CHUNK, LazyEncoded, dumps

# How long the phases around training last, in step-equivalents (so they scale with the speed).
PENDING, QUEUED, DOWNLOAD, UPLOAD, CANCEL = 2, 2, 2, 3, 1
PRICE_PER_STEP = 2_000_000  # nano-dollars
TOKENS_PER_STEP = 32_768
DEFAULT_TRAIN_ROWS = 1000  # training rows returned without ``resolution`` (eval rows: all)


class Plan:
    """What a simulated job will do, fixed at creation. (A plain class, not a dataclass: a job's
    read should not pay for defining one at start-up.)"""

    def __init__(self, n_epochs: int, total_steps: int, eval_steps: tuple[int, ...],
                 loss: tuple[float, ...] | Callable[[], Sequence[float]], settings: es.Settings | None,
                 fail_at: int | None, checkpoint_every: tuple[int, ...], seed: int) -> None:
        self.n_epochs, self.total_steps, self.eval_steps = n_epochs, total_steps, eval_steps
        self.loss = loss  # the curve, or how to read it once needed
        self.settings = settings  # None: early stopping disabled
        self.fail_at = fail_at
        self.checkpoint_every = checkpoint_every  # the evenly spaced intermediate checkpoints
        self.seed = seed

    @property
    def steps_per_epoch(self) -> float:
        return self.total_steps / self.n_epochs

    @cached_property
    def eval_loss(self) -> tuple[float, ...]:
        """The curve, read only when something needs it: the log of a job whose summary holds its
        improvements (``known_improvements``) does not."""
        return self.loss if isinstance(self.loss, tuple) else tuple(self.loss())

    @cached_property
    def _reached(self) -> list[float]:
        """The eval_loss values of the evaluations the run reaches (a failed run stops short)."""
        return [value for step, value in zip(self.eval_steps, self.eval_loss)
                if self.fail_at is None or step <= self.fail_at]

    @cached_property
    def reading(self) -> es.Reading | None:
        """The rule's reading of the run (``es.fold``: its improvements and last state, no state
        kept per evaluation); None: early stopping disabled."""
        return None if self.settings is None else es.fold(self._reached, self.settings)

    @cached_property
    def trail(self) -> list[es.State]:
        """The rule's state after each evaluation the run reaches (a running job's view needs them)."""
        if self.reading is None:
            return []
        return list(es.states(self._reached, self.reading, self.settings))

    def improvements(self) -> tuple[set[int], es.State | None]:
        """The steps where the best improved, and the rule's last state (None: early stopping off)."""
        if self.reading is None:
            return set(), None
        eval_steps = self.eval_steps
        return {eval_steps[i - 1] for i in self.reading.improvements}, self.reading.final

    def summary(self) -> dict[str, Any]:
        """The end of the run, stored beside the job so listing never replays the curve; and what
        its event log needs of the rule (``known_improvements``): the evaluations where the best
        improved, as runs ("1-100000"), and the rule's last state, so a read never replays it either."""
        reading = self.reading
        final = reading.final if reading is not None else es.INITIAL
        rule = {"improved": _runs(reading.improvements if reading is not None else ()),
                "rule": list(final) if final.evals else None}
        if final.stopped:
            out = es.outcome(final, self.eval_steps, self.total_steps, self.n_epochs)
            return {"run_steps": out.halt_step, "ends": "completed", "early_stopped": True,
                    "reason": out.reason, "best_step": out.best_step, "best_metric": out.best_metric,
                    "promoted_step": out.promoted_step, **rule}
        failed = self.fail_at is not None and self.fail_at < self.total_steps
        run_steps = self.fail_at if failed else self.total_steps
        best_step = self.eval_steps[final.best_i - 1] if final.best_i else None
        return {"run_steps": run_steps, "ends": "error" if failed else "completed",
                "early_stopped": False, "reason": None, "best_step": best_step,
                "best_metric": final.best_value, "promoted_step": None if failed else run_steps, **rule}


def make_plan(*, n_epochs: int, steps_per_epoch: int, n_evals: int,
              eval_loss: Sequence[float] | Callable[[], Sequence[float]],
              settings: es.Settings | None, fail_at: int | None, n_checkpoints: int, seed: int) -> Plan:
    from ftctl.datasets.plan import checkpoint_steps  # not imported to read a finished job

    total = n_epochs * steps_per_epoch
    if n_evals and total % n_evals == 0:  # evenly divisible, the usual case: no rounding to do
        evals = tuple(range(total // n_evals, total + 1, total // n_evals))
    else:
        evals = tuple(es.evaluation_step(i, total, n_evals) for i in range(1, n_evals + 1))
    every = tuple(s for s in checkpoint_steps(total, n_checkpoints) if s < total)  # the last is the final model
    return Plan(n_epochs, total, evals, eval_loss if callable(eval_loss) else tuple(eval_loss), settings,
                fail_at, every, seed)


class Phases:
    """When each status starts, for a run of ``run_steps`` steps created at ``created``.

    Every instant is computed once here: listing thousands of jobs reads them all.
    """

    __slots__ = ("created", "step_seconds", "run_steps", "ends", "cancel_at", "queued", "running",
                 "train_start", "train_end", "done", "cancelled")

    def __init__(self, created: float, step_seconds: float, run_steps: int, ends: str,
                 cancel_at: float | None = None) -> None:
        self.created, self.step_seconds, self.run_steps, self.ends = created, step_seconds, run_steps, ends
        self.cancel_at = cancel_at
        self.queued = created + PENDING * step_seconds
        self.running = created + (PENDING + QUEUED) * step_seconds
        self.train_start = created + (PENDING + QUEUED + DOWNLOAD) * step_seconds  # step 0
        self.train_end = self.train_start + run_steps * step_seconds
        self.done = self.train_end + (UPLOAD * step_seconds if ends == "completed" else 0.0)
        # a cancel request counts only if it came before the job ended
        self.cancelled = cancel_at is not None and cancel_at < self.done

    @classmethod
    def of(cls, created: float, speed: float, summary: dict[str, Any], cancel_at: float | None) -> Phases:
        return cls(created, 0.0 if math.isinf(speed) else 1.0 / speed, summary["run_steps"],
                   summary["ends"], cancel_at)

    def step_time(self, step: float) -> float:
        return self.train_start + step * self.step_seconds

    def stopped_at(self) -> float:
        return self.cancel_at if self.cancelled else math.inf

    def steps_at(self, t: float) -> int:
        """The last step whose time (``step_time``) is at or before ``t``.

        The exact inverse of ``step_time``, which places the events and status changes: dividing
        instead gave ``run_steps - 1`` at the very instant a run ended (``(end - start) / per_step``
        is 9.999... at 30 steps/s), so the job stored when it ended disagreed with the one computed
        later (issue 12).
        """
        t = min(t, self.stopped_at())
        if t < self.train_start:
            return 0
        if self.step_seconds == 0 or t >= self.train_end:
            return self.run_steps
        steps = min(self.run_steps, int((t - self.train_start) / self.step_seconds))
        while steps < self.run_steps and self.step_time(steps + 1) <= t:
            steps += 1
        while steps > 0 and self.step_time(steps) > t:
            steps -= 1
        return steps

    def status_at(self, t: float) -> str:
        if self.cancelled and t >= self.cancel_at:
            return "cancelled" if t >= self.cancel_at + CANCEL * self.step_seconds else "cancel_requested"
        if t >= self.done:
            return self.ends
        if t >= self.train_end:
            return "uploading"
        if t >= self.running:
            return "running"
        return "queued" if t >= self.queued else "pending"

    def last_change(self, t: float) -> float:
        marks = [self.created, self.queued, self.running, self.train_start, self.train_end, self.done]
        if self.cancelled:
            marks = [m for m in marks if m <= self.cancel_at] + [self.cancel_at, self.cancel_at + CANCEL * self.step_seconds]
        seen = [m for m in marks if m <= t]
        progress = self.step_time(self.steps_at(t)) if self.train_start <= t else self.created
        return max(seen + [progress])


def iso(t: float) -> str:
    """ISO-8601 UTC with milliseconds, as the API writes times."""
    ms = int(t * 1000)
    return _iso_ms(ms) if ms != _last_iso[0] else _last_iso[1]


_last_iso: list = [None, ""]  # many events share an instant: format it once


def _iso_ms(ms: int) -> str:
    text = f"{_iso_seconds(ms // 1000)}.{ms % 1000:03d}Z"
    _last_iso[:] = [ms, text]
    return text


@lru_cache(maxsize=4096)  # events come in runs that share a second: format each second once
def _iso_seconds(seconds: int) -> str:
    t = time.gmtime(seconds)  # not datetime: a job's read should not import it for this
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


def from_iso(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --- the job's pieces at time t -----------------------------------------------------------------


def param_count(model: str) -> int:
    """The base model's size as its name states it ("...-9B" -> 9e9): the simulator has no weights
    to count; 0 when the name does not say."""
    match = _SIZE.search(model.rsplit("/", 1)[-1])
    if match is None:
        return 0
    return int(float(match.group(1)) * (1e9 if match.group(2) in "Bb" else 1e6))


_SIZE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)([BbMm])(?![A-Za-z])")


def _artifact_hash(seed: int, step: int, kind: str = "checkpoint") -> str:
    """A digest standing for the saved weights' (the simulator saves none): a function of what
    would determine them, the run's seed and step, so the same run saves the same hash."""
    return _sha256()(f"{kind}:{seed}:{step}".encode()).hexdigest()[:32]


@lru_cache(maxsize=None)
def _sha256() -> Callable[[bytes], Any]:
    """SHA-256 without loading OpenSSL (``hashlib``'s import is a quarter of a small job's read):
    CPython's own implementation, also quicker for the short texts hashed here. The same digests."""
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # CPython 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found]  # CPython 3.12+
        except ImportError:
            from hashlib import sha256
    return sha256


class _Events:
    """Makes one job's events. Every event carries every field the API's event object requires
    (Together's OpenAPI ``FineTuneEvent``; tests/fixtures/openapi/) with the value true at that
    event: the step reached, the tokens trained by then, the path and digest of what was saved;
    "" or 0 where the event has none, as the API writes them."""

    def __init__(self, plan: Plan, model: str) -> None:
        self.model = model
        self.base = {"param_count": param_count(model), "total_steps": plan.total_steps, "wandb_url": "",
                     "checkpoint_path": "", "model_path": "", "training_offset": 0, "hash": ""}

    def __call__(self, t: float, kind: str, message: str, step: int, level: str = "info",
                 **fields: Any) -> dict[str, Any]:
        return {"object": "fine-tune-event", "created_at": iso(t), "type": kind, "level": level,
                "message": message, **self.base, "step": step, "token_count": step * TOKENS_PER_STEP,
                **fields}


Improvements = tuple[list[int], "es.State | None"]  # ``known_improvements``


def events(plan: Plan, phases: Phases, t: float, *, model: str, job_id: str,
           improvements: Improvements | None = None) -> list[dict[str, Any]]:
    """The event log up to ``t``, with the API's type names, in order. ``improvements``: where the
    saves are (``known_improvements``), which a job's stored summary spares replaying the rule for."""
    return list(event_stream(plan, phases, t, model=model, job_id=job_id, improvements=improvements))


def event_stream(plan: Plan, phases: Phases, t: float, *, model: str, job_id: str,
                 improvements: Improvements | None = None) -> Iterator[dict[str, Any]]:
    """``events``, made as they are read (a run of saves a chunk at a time, each decoded only if read)."""
    for piece in _pieces(plan, phases, t, model=model, job_id=job_id, improvements=improvements):
        if type(piece) is _Saves:
            for chunk in piece.chunks():
                yield from map(LazyEncoded, chunk)
        else:
            yield piece


def event_texts(plan: Plan, phases: Phases, t: float, *, model: str, job_id: str,
                improvements: Improvements | None = None) -> Iterator[str]:
    """``events`` as the compact JSON ``wire.dumps`` writes for them (``wire.Rows.texts``), in pieces
    of one or more events joined by ",": a run of saves is written as text, with no object made."""
    for piece in _pieces(plan, phases, t, model=model, job_id=job_id, improvements=improvements):
        if type(piece) is _Saves:
            yield from map(",".join, piece.chunks())
        else:
            yield dumps(piece)


def _pieces(plan: Plan, phases: Phases, t: float, *, model: str, job_id: str,
            improvements: Improvements | None) -> Iterator[dict[str, Any] | _Saves]:
    """The log up to ``t`` in time order: each event a dict, except runs of saves (``_Saves``)."""
    p = phases
    stop = p.stopped_at()
    event = _Events(plan, model)
    if improvements is None:
        improvements = known_improvements(plan, None)
    yield from _run_events(plan, p, event, min(t, stop), job_id=job_id, improvements=improvements)
    if p.cancelled:
        steps = p.steps_at(stop)
        if stop <= t:
            yield event(stop, "cancel_requested", "Cancellation requested", steps)
        end = stop + CANCEL * p.step_seconds
        if end <= t:
            yield event(end, "job_stopped", f"Job cancelled at step {steps} of {plan.total_steps}", steps)


def _run_events(plan: Plan, p: Phases, event: _Events, limit: float, *, job_id: str,
                improvements: Improvements) -> Iterator[dict[str, Any] | _Saves]:
    """The run's own events up to ``limit`` (the read's instant, or a cancel's). Times never
    decrease along the log, so the first event past ``limit`` ends it."""
    timed = [
        (p.created, "job_pending", "Fine-tune request created"),
        (p.running, "job_start", "Job started"),
        (p.running, "model_downloading", f"Downloading model {event.model}"),
        (p.train_start, "model_download_complete", "Model downloaded"),
        (p.train_start, "training_start", "Training started"),
    ]
    for when, kind, message in timed:
        if when > limit:
            return
        yield event(when, kind, message, 0)
    improved, final = improvements
    run = p.run_steps
    start, per_step = p.train_start, p.step_seconds

    def when_of(step: int) -> float:
        return start + step * per_step

    if plan.checkpoint_every:
        saves = sorted(set(improved).union(plan.checkpoint_every))
    else:
        saves = improved  # already in order, once each
    # up to the run's last step and to ``limit``: a save's time grows with its step
    saves = saves[:bisect.bisect_right(saves, run)]
    saves = saves[:bisect.bisect_right(saves, limit, key=when_of)]
    form = _SaveForm(plan, event, job_id, start, per_step)
    done = 0  # saves yielded so far
    for e in range(1, plan.n_epochs + 1):  # an epoch's end comes before the save at the same step
        step = round(e * plan.steps_per_epoch)
        if step > run:
            break
        before = bisect.bisect_left(saves, step, done)
        if before > done:
            yield _Saves(form, saves[done:before])
            done = before
        when = when_of(step)
        if when > limit:
            return
        yield event(when, "epoch_complete", f"Epoch {e}/{plan.n_epochs} completed", step)
    if done < len(saves):
        yield _Saves(form, saves[done:])
    for when, item in _ending(plan, p, event, final, job_id=job_id):
        if when > limit:
            return
        yield item


def _ending(plan: Plan, p: Phases, event: _Events, final: es.State | None, *,
            job_id: str) -> Iterator[tuple[float, dict[str, Any]]]:
    """The events from the last step on: a halt and its refund, then the failure or the upload."""
    run, end = p.run_steps, p.train_end
    if final is not None and final.stopped:
        halt = plan.eval_steps[final.halt_i - 1]
        out = es.outcome(final, plan.eval_steps, plan.total_steps, plan.n_epochs)
        if final.reason == es.PATIENCE_EXHAUSTED:
            why = (f"eval_loss did not improve for {final.streak} consecutive evaluations "
                   f"(patience {plan.settings.patience})")
        else:
            why = "eval_loss was not a finite number"
        yield end, event(end, "early_stopped", f"Training stopped early at step {halt}: {why}", halt,
                         early_stopping_best_step=out.best_step,
                         early_stopping_best_metric_value=out.best_metric)
        if out.steps_refunded:
            yield end, event(end, "refund", f"Refunded {out.steps_refunded} unused steps of "
                             f"{plan.total_steps}", halt)
    if p.ends == "error":
        yield end, event(end, "job_error", f"Training failed at step {run}: the worker ran out of "
                         "memory (simulated)", run, level="error")
        return
    yield end, event(end, "training_complete", f"Training completed at step {run}", run)
    yield end, event(end, "model_uploading", "Uploading model", run)
    path = f"s3://ftctl-sim/{job_id}/final"
    yield p.done, event(p.done, "model_upload_complete", f"Model uploaded to {path}", run, model_path=path,
                        hash=_artifact_hash(plan.seed, run, "final"))
    yield p.done, event(p.done, "job_complete", "Job finished", run)


class _SaveForm:
    """A checkpoint_save event as JSON text, with what one log's saves share encoded once: the same
    keys in the same order as ``_Events`` gives every other event, the digest ``_artifact_hash``'s."""

    def __init__(self, plan: Plan, event: _Events, job_id: str, start: float, per_step: float) -> None:
        folder = json.dumps(f"s3://ftctl-sim/{job_id}/checkpoints/step-", ensure_ascii=False)[1:-1]
        base = event.base
        self.middle = (f'",{_field("param_count", base)},{_field("total_steps", base)},"wandb_url":"",'
                       f'"checkpoint_path":"{folder}')
        self.key = f"checkpoint:{plan.seed}:".encode()
        self.start, self.per_step = start, per_step

    def texts(self, steps: Sequence[int]) -> list[str]:
        sha, key, middle = _sha256(), self.key, self.middle
        start, per_step = self.start, self.per_step
        # an instant run (infinite speed) saves everything at one instant: format it once
        times = repeat(iso(start)) if per_step == 0 else map(iso, [start + s * per_step for s in steps])
        return [f'{{"object":"fine-tune-event","created_at":"{at}","type":"checkpoint_save","level":"info",'
                f'"message":"Checkpoint saved at step {n}{middle}{n}","model_path":"","training_offset":0,'
                f'"hash":"{sha(key + n.encode()).hexdigest()[:32]}","step":{n},"token_count":{s * TOKENS_PER_STEP}}}'
                for s, n, at in zip(steps, map(str, steps), times)]


def _field(name: str, values: dict[str, Any]) -> str:
    return f'"{name}":{json.dumps(values[name])}'


class _Saves:
    """A run of checkpoint_save events (the commonest by far: one at every new best), in order."""

    __slots__ = ("form", "steps")

    def __init__(self, form: _SaveForm, steps: Sequence[int]) -> None:
        self.form, self.steps = form, steps

    def chunks(self) -> Iterator[list[str]]:
        """Their JSON texts, ``CHUNK`` at a time: a long run never sits in memory whole."""
        steps = self.steps
        for i in range(0, len(steps), CHUNK):
            yield self.form.texts(steps[i:i + CHUNK])


def known_improvements(plan: Plan, summary: dict[str, Any] | None) -> Improvements:
    """``Plan.improvements`` with the steps in order: read from the stored ``summary`` when it holds
    them (``Plan.summary``: every job created since it does), else replayed (older rows)."""
    try:
        return _stored_improvements(plan, summary["improved"], summary["rule"])
    except (TypeError, KeyError, ValueError, AttributeError):  # not stored (or not as written): replay
        improved, final = plan.improvements()
        return sorted(improved), final


def _stored_improvements(plan: Plan, runs: str, rule: list | None) -> Improvements:
    steps = plan.eval_steps
    out: list[int] = []
    for run in runs.split(",") if runs else ():
        first, _, last = run.partition("-")
        out += steps[int(first) - 1:int(last or first)]
    if plan.total_steps < len(steps):  # fewer steps than evaluations: some share a step
        out = sorted(set(out))
    return out, None if rule is None else es.State(*rule)


def _runs(indices: Iterable[int]) -> str:
    """Increasing integers as "a-b,c,...": every improvement of a 100,000-evaluation run is "1-100000"."""
    parts: list[str] = []
    first = last = None
    for i in indices:
        if last is not None and i == last + 1:
            last = i
            continue
        if first is not None:
            parts.append(f"{first}-{last}" if last != first else str(first))
        first = last = i
    if first is not None:
        parts.append(f"{first}-{last}" if last != first else str(first))
    return ",".join(parts)


def evals_by(steps: int, total_steps: int, n_evals: int) -> int:
    """How many evaluations have run once ``steps`` steps are done (binary search: O(log n))."""
    low, high = 0, n_evals
    while low < high:
        mid = (low + high + 1) // 2
        if es.evaluation_step(mid, total_steps, n_evals) <= steps:
            low = mid
        else:
            high = mid - 1
    return low


def visible_trail(plan: Plan, steps_done: int) -> list[es.State]:
    """The rule's states for the evaluations run by ``steps_done``."""
    return [s for s in plan.trail if plan.eval_steps[s.evals - 1] <= steps_done]


def checkpoints(plan: Plan, phases: Phases, t: float, summary: dict[str, Any], *,
                job_id: str) -> list[dict[str, Any]]:
    """Saved checkpoints up to ``t``, newest first, the promoted final one on top once uploaded.

    What is kept (README, "Checkpoints"): the n_checkpoints - 1 evenly spaced saves before the
    last step (the last is the final model), and, with early stopping, the checkpoint of the best
    evaluation so far, which the trainer saves at every improvement so that a halt can promote it;
    a better one replaces it, so only the current best is listed."""
    done = phases.steps_at(t)
    scheduled = set(plan.checkpoint_every)
    improvements = known_improvements(plan, summary)
    if done >= phases.run_steps:  # the whole run was seen: the rule's last state, stored
        last = improvements[1]
    else:
        trail = visible_trail(plan, done)
        last = trail[-1] if trail else None
    best = plan.eval_steps[last.best_i - 1] if last is not None and last.best_i else None
    keep = scheduled | ({best} if best is not None and best < plan.total_steps else set())
    # the saves of the log, only those kept made into objects (100,000 saves: a handful kept)
    pieces = _pieces(plan, phases, t, model="", job_id=job_id, improvements=improvements)
    saves = [json.loads(text) for piece in pieces if type(piece) is _Saves
             for text in piece.form.texts([step for step in piece.steps if step in keep])]
    rows = [{"step": e["step"], "path": e["checkpoint_path"], "created_at": e["created_at"],
             "checkpoint_type": f"Intermediate (step {e['step']})", "checkpoint": "model"}
            for e in reversed(saves)]
    if phases.status_at(t) == "completed" and summary.get("promoted_step") is not None:
        rows.insert(0, {"step": summary["promoted_step"], "path": f"s3://ftctl-sim/{job_id}/final",
                        "created_at": iso(phases.done), "checkpoint_type": "Final", "checkpoint": "model"})
    return rows


def metrics(plan: Plan, phases: Phases, t: float, *, learning_rate: float, scheduler: dict[str, Any],
            warmup_ratio: float, step_from: int | None = None, step_to: int | None = None,
            time_from: float | None = None, time_to: float | None = None,
            resolution: int | None = None) -> list[dict[str, Any]]:
    """Training and eval rows up to ``t``, as ``/metrics`` returns them, in step order."""
    return list(metric_stream(plan, phases, t, learning_rate=learning_rate, scheduler=scheduler,
                              warmup_ratio=warmup_ratio, step_from=step_from, step_to=step_to,
                              time_from=time_from, time_to=time_to, resolution=resolution))


def metric_stream(plan: Plan, phases: Phases, t: float, *, learning_rate: float, scheduler: dict[str, Any],
                  warmup_ratio: float, step_from: int | None = None, step_to: int | None = None,
                  time_from: float | None = None, time_to: float | None = None,
                  resolution: int | None = None) -> Iterator[dict[str, Any]]:
    """``metrics`` as an iterator (``Rows`` makes it when it is read)."""
    done = phases.steps_at(t)
    low = max(1, step_from or 1)
    high = min(done, step_to if step_to is not None else done)

    def keep(step: int) -> bool:
        when = phases.step_time(step)
        return (time_from is None or when >= time_from) and (time_to is None or when <= time_to)

    count = DEFAULT_TRAIN_ROWS if resolution is None else max(1, resolution)
    span = high - low + 1
    train_steps = (range(low, high + 1) if span <= count else
                   sorted({low + round(k * (span - 1) / (count - 1)) for k in range(count)} if count > 1 else {high}))
    import random  # training rows only: a job's read needs none

    filtered = time_from is not None or time_to is not None
    lr_at = _learning_rate(plan.total_steps, learning_rate, scheduler, warmup_ratio)
    curve = _TrainCurve(plan)
    rows = [{"timestamp": _ns(phases.step_time(step)), "train/global_step": step,
             "train/epoch": round(step / plan.steps_per_epoch, 4),
             "train/loss": curve.at(step), "train/learning_rate": lr_at(step),
             "train/grad_norm": round(0.4 + 0.6 * random.Random(plan.seed * 7919 + step).random(), 4)}
            for step in train_steps if not filtered or keep(step)]
    start, per_step, per_epoch = phases.train_start, phases.step_seconds, plan.steps_per_epoch
    steps, values = plan.eval_steps, plan.eval_loss
    first = bisect.bisect_left(steps, low)
    last = bisect.bisect_right(steps, high)
    fixed = int(start * 1e9) + 1 if per_step == 0 else None  # an instant run: one timestamp for all
    if fixed is not None and not filtered:  # the common case, 100,000 rows: nothing but the row itself
        evals = ({"timestamp": fixed, "train/global_step": step, "train/epoch": round(step / per_epoch, 4),
                  "eval/loss": value} for step, value in zip(steps[first:last], values[first:last]))
    else:
        evals = ({"timestamp": int((start + step * per_step) * 1e9) + 1, "train/global_step": step,
                  "train/epoch": round(step / per_epoch, 4), "eval/loss": value}
                 for step, value in zip(steps[first:last], values[first:last]) if not filtered or keep(step))
    # Two runs already in step order: a stable sort merges them in C (a training row before the
    # eval row of the same step). A reading takes the eval rows as columns instead (``Rows``).
    rows += evals
    rows.sort(key=_STEP_OF)
    return iter(rows)


_STEP_OF = itemgetter("train/global_step")


def _ns(t: float) -> int:
    return int(t * 1e9)


class _TrainCurve:
    """Training loss: just under the eval curve, noisy; NaN once the eval loss has diverged."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.points = list(zip(plan.eval_steps, plan.eval_loss))
        first = next((v for v in plan.eval_loss if math.isfinite(v)), 2.0)
        self.start = first * 1.25

    def at(self, step: int) -> float:
        i = bisect.bisect_left(self.points, (step, -math.inf))
        if i < len(self.points) and self.points[i][0] == step:
            base = self.points[i][1]
        elif i == 0:
            first_step, first = self.points[0] if self.points else (self.plan.total_steps, self.start * 0.6)
            base = self.start + (first - self.start) * step / max(1, first_step) if math.isfinite(first) else first
        elif i == len(self.points):
            base = self.points[-1][1]
        else:
            (s0, v0), (s1, v1) = self.points[i - 1], self.points[i]
            base = v0 + (v1 - v0) * (step - s0) / (s1 - s0) if math.isfinite(v0) and math.isfinite(v1) else math.nan
        if not math.isfinite(base):
            return math.nan
        import random

        noise = random.Random(self.plan.seed * 104729 + step).gauss(0, 0.02)
        return round(base * 0.92 + noise, 4)


def _learning_rate(total: int, lr: float, scheduler: dict[str, Any], warmup_ratio: float):
    kind = scheduler.get("lr_scheduler_type", "cosine")
    args = scheduler.get("lr_scheduler_args") or {}
    low = lr * float(args.get("min_lr_ratio", 0.0))
    cycles = float(args.get("num_cycles", 0.5))
    warm = round(warmup_ratio * total)

    def at(step: int) -> float:
        if warm and step <= warm:
            return lr * step / warm
        p = (step - warm) / max(1, total - warm)
        if kind == "linear":
            return low + (lr - low) * (1 - p)
        return low + (lr - low) * 0.5 * (1 + math.cos(math.pi * 2 * cycles * p))

    return at
