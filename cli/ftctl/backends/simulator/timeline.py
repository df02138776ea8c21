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
import random
from dataclasses import dataclass
from functools import cached_property, lru_cache
from operator import itemgetter
from datetime import datetime, timezone
from typing import Any, Iterator

from ftctl import early_stopping as es
from ftctl.wire import LazyEncoded

# How long the phases around training last, in step-equivalents (so they scale with the speed).
PENDING, QUEUED, DOWNLOAD, UPLOAD, CANCEL = 2, 2, 2, 3, 1
PRICE_PER_STEP = 2_000_000  # nano-dollars
TOKENS_PER_STEP = 32_768
DEFAULT_TRAIN_ROWS = 1000  # training rows returned without ``resolution`` (eval rows: all)


@dataclass(frozen=True)
class Plan:
    """What a simulated job will do, fixed at creation."""

    n_epochs: int
    total_steps: int
    eval_steps: tuple[int, ...]
    eval_loss: tuple[float, ...]
    settings: es.Settings | None  # None: early stopping disabled
    fail_at: int | None
    checkpoint_every: tuple[int, ...]  # the evenly spaced intermediate checkpoints
    seed: int

    @property
    def steps_per_epoch(self) -> float:
        return self.total_steps / self.n_epochs

    @cached_property
    def trail(self) -> list[es.State]:
        """The rule fed one evaluation at a time, over the evaluations the run reaches."""
        if self.settings is None:
            return []
        reached = (value for step, value in zip(self.eval_steps, self.eval_loss)
                   if self.fail_at is None or step <= self.fail_at)
        return list(es.trail(reached, self.settings))

    def improvements(self) -> tuple[set[int], es.State | None]:
        """The steps where the best improved, and the rule's last state (None: early stopping off),
        read in one pass without keeping every state (100,000 of them) unless ``trail`` already is."""
        if self.settings is None:
            return set(), None
        eval_steps = self.eval_steps
        states = self.__dict__.get("trail")
        if states is None:
            reached = (value for step, value in zip(eval_steps, self.eval_loss)
                       if self.fail_at is None or step <= self.fail_at)
            states = es.trail(reached, self.settings)
        improved, final = set(), None
        for final in states:
            if final.improved:
                improved.add(eval_steps[final.evals - 1])
        return improved, final

    def summary(self) -> dict[str, Any]:
        """The end of the run, stored beside the job so listing never replays the curve."""
        trail = self.trail
        final = trail[-1] if trail else es.INITIAL
        if final.stopped:
            out = es.outcome(final, self.eval_steps, self.total_steps, self.n_epochs)
            return {"run_steps": out.halt_step, "ends": "completed", "early_stopped": True,
                    "reason": out.reason, "best_step": out.best_step, "best_metric": out.best_metric,
                    "promoted_step": out.promoted_step}
        failed = self.fail_at is not None and self.fail_at < self.total_steps
        run_steps = self.fail_at if failed else self.total_steps
        best_step = self.eval_steps[final.best_i - 1] if final.best_i else None
        return {"run_steps": run_steps, "ends": "error" if failed else "completed",
                "early_stopped": False, "reason": None, "best_step": best_step,
                "best_metric": final.best_value, "promoted_step": None if failed else run_steps}


def make_plan(*, n_epochs: int, steps_per_epoch: int, n_evals: int, eval_loss: list[float],
              settings: es.Settings | None, fail_at: int | None, n_checkpoints: int, seed: int) -> Plan:
    from ftctl.datasets.plan import checkpoint_steps  # not imported to read a finished job

    total = n_epochs * steps_per_epoch
    if n_evals and total % n_evals == 0:  # evenly divisible, the usual case: no rounding to do
        evals = tuple(range(total // n_evals, total + 1, total // n_evals))
    else:
        evals = tuple(es.evaluation_step(i, total, n_evals) for i in range(1, n_evals + 1))
    every = tuple(s for s in checkpoint_steps(total, n_checkpoints) if s < total)  # the last is the final model
    return Plan(n_epochs, total, evals, tuple(eval_loss), settings, fail_at, every, seed)


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
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def from_iso(text: str) -> float:
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
    import hashlib

    return hashlib.sha256(f"{kind}:{seed}:{step}".encode()).hexdigest()[:32]


def _checkpoint_hasher(seed: int) -> Any:
    """``_artifact_hash(seed, step)`` for many steps, the common prefix hashed once."""
    import hashlib  # only when a log is made: reading a job needs no digest

    prefix = hashlib.sha256(f"checkpoint:{seed}:".encode())

    def digest(step: int) -> str:
        h = prefix.copy()
        h.update(str(step).encode())
        return h.hexdigest()[:32]

    return digest


class _Events:
    """Makes one job's events. Every event carries every field the API's event object requires
    (Together's OpenAPI ``FineTuneEvent``; tests/fixtures/openapi/) with the value true at that
    event: the step reached, the tokens trained by then, the path and digest of what was saved;
    "" or 0 where the event has none, as the API writes them."""

    def __init__(self, plan: Plan, model: str) -> None:
        self.base = {"param_count": param_count(model), "total_steps": plan.total_steps, "wandb_url": "",
                     "checkpoint_path": "", "model_path": "", "training_offset": 0, "hash": ""}

    def __call__(self, t: float, kind: str, message: str, step: int, level: str = "info",
                 **fields: Any) -> dict[str, Any]:
        return {"object": "fine-tune-event", "created_at": iso(t), "type": kind, "level": level,
                "message": message, **self.base, "step": step, "token_count": step * TOKENS_PER_STEP,
                **fields}


def events(plan: Plan, phases: Phases, t: float, *, model: str, job_id: str) -> list[dict[str, Any]]:
    """The event log up to ``t``, with the API's type names, in order."""
    return list(event_stream(plan, phases, t, model=model, job_id=job_id))


def event_stream(plan: Plan, phases: Phases, t: float, *, model: str, job_id: str) -> Iterator[dict[str, Any]]:
    """``events``, made one at a time."""
    for when, event in _all_events(plan, phases, model=model, job_id=job_id):
        if when > t:  # they come in time order
            break
        yield event


def _all_events(plan: Plan, phases: Phases, *, model: str, job_id: str) -> Iterator[tuple[float, dict]]:
    p = phases
    stop = p.stopped_at()
    event = _Events(plan, model)
    timed: list[tuple[float, dict]] = [
        (p.created, event(p.created, "job_pending", "Fine-tune request created", 0)),
        (p.running, event(p.running, "job_start", "Job started", 0)),
        (p.running, event(p.running, "model_downloading", f"Downloading model {model}", 0)),
        (p.train_start, event(p.train_start, "model_download_complete", "Model downloaded", 0)),
        (p.train_start, event(p.train_start, "training_start", "Training started", 0)),
    ]
    yield from (x for x in timed if x[0] <= stop)
    for when, item in _training_events(plan, p, event, job_id=job_id):
        if when > stop:
            break
        yield when, item
    if p.cancelled:
        steps = p.steps_at(stop)
        yield stop, event(stop, "cancel_requested", "Cancellation requested", steps)
        end = stop + CANCEL * p.step_seconds
        yield end, event(end, "job_stopped", f"Job cancelled at step {steps} of {plan.total_steps}", steps)


def _training_events(plan: Plan, p: Phases, event: _Events, *, job_id: str) -> Iterator[tuple[float, dict]]:
    improved_at, final = plan.improvements()
    run = p.run_steps
    epoch_steps = {round(e * plan.steps_per_epoch): e for e in range(1, plan.n_epochs + 1)}
    saves = improved_at | set(plan.checkpoint_every)
    start, per_step = p.train_start, p.step_seconds
    # The fields every save shares, encoded once: a save is then one f-string, with the same keys
    # in the same order as ``_Events`` gives every other event (the JSON an API client reads).
    folder = json.dumps(f"s3://ftctl-sim/{job_id}/checkpoints/step-", ensure_ascii=False)[1:-1]
    base = event.base
    middle = (f'"param_count":{json.dumps(base["param_count"])},"total_steps":{json.dumps(base["total_steps"])},'
              f'"wandb_url":"","checkpoint_path":"')
    digest = _checkpoint_hasher(plan.seed)
    for step in sorted(saves.union(epoch_steps)):  # one pass over the steps where something happens
        if step > run:
            break
        when = start + step * per_step
        if step in epoch_steps:
            e = epoch_steps[step]
            yield when, event(when, "epoch_complete", f"Epoch {e}/{plan.n_epochs} completed", step)
        if step in saves:  # the commonest event by far (a save at every new best): written as JSON
            yield when, LazyEncoded(
                f'{{"object":"fine-tune-event","created_at":"{iso(when)}","type":"checkpoint_save","level":"info",'
                f'"message":"Checkpoint saved at step {step}",{middle}{folder}{step}","model_path":"",'
                f'"training_offset":0,"hash":"{digest(step)}","step":{step},"token_count":{step * TOKENS_PER_STEP}}}')
    end = p.train_end
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
    trail = visible_trail(plan, done)
    best = plan.eval_steps[trail[-1].best_i - 1] if trail and trail[-1].best_i else None
    keep = scheduled | ({best} if best is not None and best < plan.total_steps else set())
    saves = [e for e in events(plan, phases, t, model="", job_id=job_id)
             if e["type"] == "checkpoint_save" and e["step"] in keep]
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
