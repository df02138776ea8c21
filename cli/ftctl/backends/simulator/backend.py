"""The simulator as a backend: the same wire objects as Together's API, from the store and the clock.

The HTTP server of ``ftctl sim serve`` wraps this class; it does not reimplement it.
"""

from __future__ import annotations

import bisect
import json
import math
import time
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterator

from ftctl import early_stopping as es
from ftctl.backends.simulator import scenarios, timeline
from ftctl.backends.simulator.scenarios import Scenario
from ftctl.backends.simulator.store import Record, Store
from ftctl.errors import ApiError, InvalidInput, NotFound
from ftctl.request_checks import check_body, check_estimate_body
from ftctl.wire import SECRET_BODY_FIELDS, TERMINAL_STATUSES, LazyEncoded, MetricsQuery, Rows, Wire, dumps

if TYPE_CHECKING:
    from ftctl.backend import Download
    from ftctl.backends.simulator.files import Files

STORE_FILE = "simulator.db"
USER_ID = "sim-user"
MAX_BATCH = 8  # what "max" resolves to on the simulated hardware
USER_LIMIT_USD = 1000.0  # the simulated account's credit limit: a dearer estimate may not proceed
# The simulated model's limits (``GET /v1/fine-tunes/models/limits``), enforced at create as the real
# server enforces a model's: a job's reads cost time in its epochs and evaluations.
LIMITS = {"n_epochs": 1000, "n_evals": 100_000, "n_checkpoints": 100}
_DEFAULT_LORA = {"type": "Lora", "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.0,
                 "lora_trainable_modules": "all-linear"}
# The schedule the simulator runs when none is asked for (``timeline._learning_rate``'s defaults).
_SCHEDULER_ARGS = {"cosine": {"min_lr_ratio": 0.0, "num_cycles": 0.5}, "linear": {"min_lr_ratio": 0.0}}


class Conflict(ApiError):
    code = "conflict"


class Simulator:
    name = "sim"

    def __init__(self, home: Path, *, speed: float, clock: Callable[[], float] | None = None,
                 scenario: Scenario | None = None) -> None:
        self.speed = speed
        self.clock = clock or time.time  # wall time: a job's timeline is a function of it
        self.scenario = scenario  # for the jobs this instance creates; the server passes one per request
        self.home = home
        self.store = Store(home / STORE_FILE, seed=lambda db: self.files.seed(db))
        self._stats: dict[Path, tuple[int, int]] = {}

    @cached_property
    def files(self) -> Files:
        """The uploaded files, made on first use: reading a job never touches them."""
        from ftctl.backends.simulator.files import Files

        return Files(self.store, self.home, clock=lambda: self.clock(), speed=self.speed)

    def close(self) -> None:
        self.store.close()

    # -- the API -------------------------------------------------------------------------------

    def create(self, body: Wire, *, scenario: Scenario | None = None) -> Wire:
        scenario = scenario or self.scenario
        check_body(body)  # the server checks what it receives, whoever sent it
        _check_limits(body)
        self._check_references(body)
        import hashlib
        import uuid

        job_id = f"ft-{uuid.uuid4()}"
        seed = body.get("random_seed")
        if seed is None:
            seed = int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:4], "big")
        n_epochs, n_evals = body.get("n_epochs") or 1, body.get("n_evals") or 0
        steps_per_epoch = self.steps_per_epoch(body, scenario)
        # A preset draws the same curve every time unless a seed is given, so it keeps its promise.
        curve_seed = body.get("random_seed")
        if curve_seed is None:
            curve_seed = scenarios.preset_seed(scenario) if scenario and scenario.preset else seed
        eval_loss = scenarios.curve(scenario, n_evals, curve_seed)
        settings = es.settings_from(body.get("early_stopping_patience"), body.get("early_stopping_min_delta"),
                                    body.get("early_stopping_warmup_evals")) \
            if body.get("early_stopping_enabled") else None
        plan = timeline.make_plan(
            n_epochs=n_epochs, steps_per_epoch=steps_per_epoch, n_evals=n_evals, eval_loss=eval_loss,
            settings=settings, fail_at=scenarios.fail_step(scenario, n_epochs * steps_per_epoch),
            n_checkpoints=body.get("n_checkpoints") or 1, seed=seed)
        stored = {k: v for k, v in body.items() if k not in SECRET_BODY_FIELDS}
        stored["_steps_per_epoch"] = steps_per_epoch
        stored["_wandb"] = bool(body.get("wandb_key") or body.get("wandb_project_name"))  # the key is never kept
        record = Record(job_id, self.clock(), self.speed, None, seed, json.dumps(stored),
                        None if scenario is None else json.dumps(scenario.settings_json()),
                        Record.encode_loss(eval_loss), json.dumps(plan.summary()))
        # Once it has ended, a job that is not cancelled never changes again: keep that object, so
        # reading finished jobs (every listing) is one decode instead of a replay.
        view = _View(record)
        done = view.phases.done
        record = record.ended(done, dumps(view.job(done, full=False)))
        self.store.add(record)
        return _job_at(record, self.clock(), full=False)

    def steps_per_epoch(self, body: Wire, scenario: Scenario | None) -> int:
        """Steps per epoch (README, "How long a simulated job runs"): a scenario's steps_per_epoch;
        a preset's, the worked example's 24; else what the training file implies
        (``ftctl.datasets.plan``), or 24 for a file the simulator cannot read. Never fewer steps than
        evaluations."""
        n_epochs, n_evals = body.get("n_epochs") or 1, body.get("n_evals") or 0
        floor = math.ceil(n_evals / n_epochs)
        if scenario and scenario.steps_per_epoch:
            return scenario.steps_per_epoch
        stats = None if scenario and scenario.preset else self._training_stats(body.get("training_file"))
        if stats is None:
            return max(scenarios.DEFAULT_STEPS_PER_EPOCH, floor)
        from ftctl.datasets.plan import DEFAULT_MAX_SEQ_LENGTH, steps_per_epoch

        batch = body.get("batch_size", "max")
        return max(floor, steps_per_epoch(*stats, batch_size=MAX_BATCH if batch == "max" else batch,
                                          max_seq_length=body.get("max_seq_length") or DEFAULT_MAX_SEQ_LENGTH,
                                          packing=body.get("packing", True) is not False))

    def _training_stats(self, file_id: Any) -> tuple[int, int] | None:
        """(examples, approximate tokens) of a file the simulator holds, read once per instance."""
        path = self._file_path(file_id) if isinstance(file_id, str) and file_id else None
        if path is None:
            return None
        if path not in self._stats:
            from ftctl.datasets import check_path

            report = check_path(str(path))
            self._stats[path] = (report.num_samples, report.approx_tokens)
        return self._stats[path]

    def _file_path(self, file_id: str) -> Path | None:
        """Where the bytes of ``file_id`` are, if the simulator holds it."""
        try:
            return self.files.content(file_id)
        except (NotFound, ApiError):
            return None

    def estimate_price(self, body: Wire, *, scenario: Scenario | None = None) -> Wire:
        """``POST /v1/fine-tunes/estimate-price``: the steps the job would run, priced as the
        simulator bills them (per step); more than ``USER_LIMIT_USD`` may not proceed."""
        check_estimate_body(body)
        _check_limits(body)
        steps = (body.get("n_epochs") or 1) * self.steps_per_epoch(body, scenario or self.scenario)
        price = steps * timeline.PRICE_PER_STEP / 1e9
        return {"estimation_available": True, "allowed_to_proceed": price <= USER_LIMIT_USD,
                "estimated_total_price": price,
                "estimated_train_token_count": float(steps * timeline.TOKENS_PER_STEP),
                "estimated_eval_token_count": float((body.get("n_evals") or 0) * timeline.TOKENS_PER_STEP),
                "user_limit": USER_LIMIT_USD}

    def retrieve(self, job_id: str, *, events: bool = True, once: bool = False) -> Wire:
        return _job_at(self._get(job_id), self.clock(), full=events)

    def settled(self, job_id: str) -> tuple[Any, ...] | None:
        """What identifies a job that has ended, whose views never change again (a server keeps
        its long answers under it); None while it has not ended."""
        record = self._get(job_id)
        if _View(record).phases.status_at(self.clock()) not in TERMINAL_STATUSES:
            return None
        return record.id, record.created_at, record.seed, record.cancel_at, record.done_at

    def list(self) -> list[Wire]:
        now = self.clock()
        return [r if type(r) is LazyEncoded else _job_at(r, now, full=False) for r in self.store.newest_first(now)]

    def cancel(self, job_id: str) -> Wire:
        record = self._get(job_id)
        now = self.clock()
        view = _View(record)
        status = view.phases.status_at(now)
        if status in ("cancel_requested", "cancelled"):
            return view.job(now, full=False)
        if status in TERMINAL_STATUSES:
            raise Conflict(f"job {job_id} has already ended ({status}); only a pending, queued or "
                           "running job can be cancelled")
        record = self.store.request_cancel(job_id, now) or record
        # Read the clock again: another process may have recorded its (later) request first, and
        # the job must read as cancelled from that instant on.
        return _View(record).job(max(self.clock(), record.cancel_at or now), full=False)

    def events(self, job_id: str) -> Rows:
        """Made as they are read (``wire.Rows``): 100,000 events are never all in memory at once."""
        view = _View(self._get(job_id))
        t, plan = self.clock(), view.plan  # the plan now: a damaged row fails before anything is written
        made = dict(model=view.record.body.get("model") or "", job_id=view.record.id,
                    improvements=timeline.known_improvements(plan, view.record.summary))
        # --json (and the server) write the log as text, with no event object made
        return Rows(lambda: timeline.event_stream(plan, view.phases, t, **made),
                    texts=lambda: timeline.event_texts(plan, view.phases, t, **made))

    def checkpoints(self, job_id: str) -> list[Wire]:
        view = _View(self._get(job_id))
        return timeline.checkpoints(view.plan, view.phases, self.clock(), view.record.summary, job_id=job_id)

    def metrics(self, job_id: str, query: MetricsQuery = MetricsQuery()) -> Rows:
        """Made as they are read (``wire.Rows``): a reading keeps its points, not 100,000 row dicts."""
        view = _View(self._get(job_id))
        body, t = view.record.body, self.clock()
        filters = dict(
            time_from=None if query.logged_at_from is None else _time(query.logged_at_from),
            time_to=None if query.logged_at_to is None else _time(query.logged_at_to))
        view.plan.eval_loss  # noqa: B018 (now: a damaged row fails before anything is written)
        return Rows(lambda: timeline.metric_stream(
            view.plan, view.phases, t,
            learning_rate=body.get("learning_rate", 1e-5), scheduler=body.get("lr_scheduler") or {},
            warmup_ratio=body.get("warmup_ratio") or 0.0,
            step_from=query.global_step_from, step_to=query.global_step_to, resolution=query.resolution,
            **filters), eval_columns=None if query.params() else lambda: _eval_columns(view, t))

    def delete(self, job_id: str) -> Wire:
        """Refuses a job that has not ended (the API's rule is not documented; ftctl's choice: a
        running job's checkpoints are still being written, so cancel first, then delete)."""
        record = self._get(job_id)
        status = _View(record).phases.status_at(self.clock())
        if status not in TERMINAL_STATUSES:
            raise Conflict(f"job {job_id} is {status}: only a job that has ended can be deleted; "
                           "cancel it first, then delete it")
        self.store.delete(job_id)
        return {"message": f"Fine-tuning job {job_id} deleted"}

    def archive(self, job_id: str, *, step: int | None, checkpoint: str | None) -> tuple[Any, str]:
        """The checkpoint archive of a completed job (``archive.Archive``) and its file name.
        ``step`` None is the checkpoint the job shipped (for an early-stopped job, its best step)."""
        from ftctl.backends.simulator import archive

        record = self._get(job_id)
        job = _job_at(record, self.clock(), full=False)
        if job["status"] != "completed":
            raise Conflict(f"job {job_id} is {job['status']}: only a completed job's checkpoints can be "
                           "downloaded")
        shipped = record.summary.get("promoted_step")
        if step is not None:
            steps = sorted({c["step"] for c in self.checkpoints(job_id)})
            if step not in steps:
                raise NotFound(f"job {job_id} has no checkpoint at step {step} (its checkpoints: "
                               f"{', '.join(map(str, steps)) or 'none'})")
        kind = checkpoint_kind(job, checkpoint)
        chosen = shipped if step is None else step
        body = record.body
        sent: dict[str, Any] = {"early_stopping_enabled": bool(body.get("early_stopping_enabled"))}
        if sent["early_stopping_enabled"]:  # the settings in force, server defaults filled in
            rule = es.settings_from(body.get("early_stopping_patience"), body.get("early_stopping_min_delta"),
                                    body.get("early_stopping_warmup_evals"))
            sent.update(early_stopping_patience=rule.patience, early_stopping_min_delta=rule.min_delta,
                        early_stopping_warmup_evals=rule.warmup_evals)
        built = archive.build(job, step=chosen, kind=kind, created_at=record.created_at, sent=sent)
        return built, archive.file_name(job.get("model_output_name"), job_id, step=step, adapter=kind == "adapter")

    @contextmanager
    def open_download(self, job_id: str, *, step: int | None, checkpoint: str,
                      start: int = 0) -> Iterator[Download]:
        from ftctl.backend import Download
        from ftctl.backends.simulator.archive import CONTENT_TYPE

        built, name = self.archive(job_id, step=step, checkpoint=checkpoint)
        start = start if 0 <= start <= built.size else 0  # past the end: the whole archive again
        yield Download(built.size, start, name, CONTENT_TYPE, built.read(start))

    # -- files (``files.py``) --------------------------------------------------------------------

    def upload_file(self, path: Path, *, purpose: str = "fine-tune", upload: Any = None) -> tuple[Wire, bool]:
        """Store ``path``: (the file, whether identical bytes were already there). ``upload``
        (``ftctl.files.Upload``) follows the progress; nothing is visible until the bytes are in."""
        if upload is not None:
            upload.stage = "sending"
        file, existed = self.files.upload(path, purpose=purpose, progress=upload.reach if upload else None)
        if upload is not None:
            upload.file_id, upload.stage = file["id"], "done"
        return file, existed

    def list_files(self) -> list[Wire]:
        return self.files.list()

    def retrieve_file(self, file_id: str) -> Wire:
        return self.files.retrieve(file_id)

    def delete_file(self, file_id: str) -> Wire:
        return self.files.delete(file_id)

    def file_content(self, file_id: str, out: BinaryIO) -> int:
        """Copy the file's bytes to ``out``; returns how many."""
        import shutil

        with open(self.files.content(file_id), "rb") as f:
            shutil.copyfileobj(f, out, 1 << 20)
            return f.tell()

    # -- inside ---------------------------------------------------------------------------------

    def _check_references(self, body: Wire) -> None:
        """What the real server refuses that only it can know: files it does not hold or found
        invalid, a model it does not fine-tune, a checkpoint that was never saved."""
        if body.get("model"):
            from ftctl.backends.simulator import catalogue

            catalogue.model(body["model"])
        for key in ("training_file", "validation_file"):
            if body.get(key):
                self.files.usable(body[key], key)
        source = body.get("from_checkpoint")
        if source:
            job_id, _, step = str(source).partition(":")
            try:
                saved = self.checkpoints(job_id)
            except NotFound:
                raise NotFound(f"from_checkpoint {source!r}: no fine-tuning job with id {job_id!r}") from None
            steps = sorted({c["step"] for c in saved})
            if not steps:
                raise NotFound(f"from_checkpoint {source!r}: job {job_id} has saved no checkpoint yet")
            if step and (not step.isdigit() or int(step) not in steps):
                raise NotFound(f"from_checkpoint {source!r}: job {job_id} has no checkpoint at step {step} "
                               f"(saved: {', '.join(map(str, steps))})")

    def _get(self, job_id: str) -> Record:
        record = self.store.get(job_id)
        if record is None:
            # the store's path is a hint for a local user, never part of what a served client sees
            raise NotFound(f"no fine-tuning job with id {job_id!r}",
                           hint=f"the simulator's store is {self.store.path}")
        return record


# The job echoes its settings as the full objects the API documents (Together's OpenAPI spec,
# tests/fixtures/openapi/): the defaults the run used filled in, never null or a partial object.


def _scheduler(body: Wire) -> Wire:
    given = body.get("lr_scheduler") or {}
    kind = given.get("lr_scheduler_type") or "cosine"
    return {"lr_scheduler_type": kind,
            "lr_scheduler_args": {**_SCHEDULER_ARGS[kind], **(given.get("lr_scheduler_args") or {})}}


def _training_method(body: Wire) -> Wire:
    given = body.get("training_method") or {}
    if given.get("method") == "dpo":
        return dict(given)
    return {"method": "sft", "train_on_inputs": "auto", **given}


def _training_type(body: Wire) -> Wire:
    given = body.get("training_type") or {}
    if str(given.get("type", "lora")).lower() == "full":
        return {**given, "type": "Full"}
    return {**_DEFAULT_LORA, **given, "type": "Lora"}


def checkpoint_kind(job: Wire, checkpoint: str | None) -> str:
    """The archive a ``checkpoint`` query value means for this job: merged, adapter, or default
    (a full-training job's weights). The vendor's client sends merged/adapter for LoRA jobs and
    model_output_path for full ones (``default`` passes through when the job has no type)."""
    if checkpoint not in (None, "", "default", "merged", "adapter", "model_output_path"):
        raise InvalidInput(f"checkpoint must be merged, adapter or model_output_path (got {checkpoint!r})")
    lora = str((job.get("training_type") or {}).get("type", "")).lower() == "lora"
    if checkpoint == "adapter":
        if not lora:
            raise InvalidInput(f"job {job['id']} is full training: it has no adapter (use "
                               "checkpoint=model_output_path)")
        return "adapter"
    return "merged" if lora else "default"


def _check_limits(body: Wire) -> None:
    for key, limit in LIMITS.items():
        if (body.get(key) or 0) > limit:
            raise InvalidInput(f"{key} must be <= {limit} on the simulator (got {body[key]})")


def _wandb_url(body: Wire, job_id: str) -> str:
    base = str(body.get("wandb_base_url") or "https://wandb.ai").rstrip("/")
    return (f"{base}/{body.get('wandb_entity') or USER_ID}/{body.get('wandb_project_name') or 'together'}"
            f"/runs/{job_id[3:11]}")


def _time(text: str) -> float:
    try:
        return timeline.from_iso(text)
    except ValueError:
        from ftctl.errors import InvalidInput

        raise InvalidInput(f"logged_at filters must be ISO-8601 times (got {text!r})") from None


def _eval_columns(view: _View, t: float) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The steps and eval/loss values of the eval rows an unfiltered ``metrics`` makes at ``t``
    (``timeline.metric_stream``: steps 1 to the last one done), as two columns."""
    steps, values = view.plan.eval_steps, view.plan.eval_loss
    first, last = bisect.bisect_left(steps, 1), bisect.bisect_right(steps, view.phases.steps_at(t))
    return steps[first:last], values[first:last]


def _job_at(record: Record, t: float, *, full: bool) -> Wire:
    """The job object at ``t``: the stored final one when the job has ended, else computed."""
    if not full:
        finished = record.finished(t)
        if finished is not None:
            return finished
    return _View(record).job(t, full=full)


class _View:
    """One stored job read at an instant."""

    def __init__(self, record: Record) -> None:
        self.record = record
        self.phases = timeline.Phases.of(record.created_at, record.speed, record.summary, record.cancel_at)
        self._plan: timeline.Plan | None = None

    @property
    def plan(self) -> timeline.Plan:
        if self._plan is None:
            body, scenario = self.record.body, self.record.scenario
            settings = es.settings_from(body.get("early_stopping_patience"), body.get("early_stopping_min_delta"),
                                        body.get("early_stopping_warmup_evals")) \
                if body.get("early_stopping_enabled") else None
            n_epochs = body.get("n_epochs") or 1
            spe = body["_steps_per_epoch"]
            self._plan = timeline.make_plan(
                n_epochs=n_epochs, steps_per_epoch=spe, n_evals=body.get("n_evals") or 0,
                eval_loss=lambda: self.record.eval_loss, settings=settings,
                fail_at=scenarios.fail_step(None if scenario is None else Scenario.from_json(scenario),
                                            n_epochs * spe),
                n_checkpoints=body.get("n_checkpoints") or 1, seed=self.record.seed)
        return self._plan

    def events(self, t: float) -> list[Wire]:
        return timeline.events(self.plan, self.phases, t, model=self.record.body.get("model") or "",
                               job_id=self.record.id,
                               improvements=timeline.known_improvements(self.plan, self.record.summary))

    def job(self, t: float, *, full: bool) -> Wire:
        r, p, body = self.record, self.phases, self.record.body
        status = p.status_at(t)
        steps = p.steps_at(t)
        n_epochs, n_evals = body.get("n_epochs") or 1, body.get("n_evals") or 0
        total = n_epochs * body["_steps_per_epoch"]
        job: dict[str, Any] = {"id": r.id, "status": status, "user_id": USER_ID,
                               "created_at": timeline.iso(r.created_at), "updated_at": timeline.iso(p.last_change(t))}
        if t >= p.running:
            job["started_at"] = timeline.iso(p.running)
        job["model"] = body.get("model")
        job["model_output_name"] = f"{USER_ID}/{(body.get('model') or 'model').split('/')[-1]}-" \
                                   f"{body.get('suffix') or r.id[3:11]}"
        for key in ("suffix", "from_checkpoint", "training_file", "validation_file"):
            if body.get(key):
                job[key] = body[key]
        job.update({
            "n_epochs": n_epochs, "n_evals": n_evals, "n_checkpoints": body.get("n_checkpoints") or 1,
            "batch_size": MAX_BATCH if body.get("batch_size", "max") == "max" else body["batch_size"],
            "learning_rate": body.get("learning_rate", 1e-5), "lr_scheduler": _scheduler(body),
            "warmup_ratio": body.get("warmup_ratio", 0.0), "max_grad_norm": body.get("max_grad_norm", 1.0),
            "weight_decay": body.get("weight_decay", 0.0),
            "training_method": _training_method(body), "training_type": _training_type(body),
            "random_seed": r.seed,
            "total_steps": total,
            "steps_completed": steps,
            "evals_completed": timeline.evals_by(steps, total, n_evals),
            "epochs_completed": steps * n_epochs // total,
        })
        if n_evals:
            job["eval_steps"] = total // n_evals
        job["early_stopped"] = False
        if body.get("early_stopping_enabled"):
            job.update(self._early_stopping_fields(t, status, steps))
        if body.get("_wandb"):  # null until the run starts, as the API's (docs/api.md)
            job["wandb_url"] = _wandb_url(body, r.id) if t >= p.running else None
        job["total_price"] = steps * timeline.PRICE_PER_STEP
        job["token_count"] = steps * timeline.TOKENS_PER_STEP
        if status not in TERMINAL_STATUSES:
            job["progress"] = {"estimate_available": True,
                               "seconds_remaining": max(0, math.ceil(p.done - t))}
        job["events"] = self.events(t) if full else []
        return job

    def _early_stopping_fields(self, t: float, status: str, steps: int) -> dict[str, Any]:
        s = self.record.summary
        if steps >= s["run_steps"] and not self.phases.cancelled:
            return {"early_stopped": s["early_stopped"], "early_stopping_best_step": s["best_step"],
                    "early_stopping_best_metric": s["best_metric"]}
        trail = timeline.visible_trail(self.plan, steps)
        if not trail:
            return {}
        last = trail[-1]
        best_step = self.plan.eval_steps[last.best_i - 1] if last.best_i else None
        return {"early_stopped": False, "early_stopping_best_step": best_step,
                "early_stopping_best_metric": last.best_value}
