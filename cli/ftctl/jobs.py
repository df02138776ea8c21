"""The service: operations on jobs for the commands, one ``Service`` per run. Checks before
anything is sent, the backend call (the backend is opened only once the checks have passed), what
ftctl remembers locally, and the orchestration of a wait. Returns data; never prints.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from ftctl.errors import ApiError, AuthError, FtctlError, InvalidInput

if TYPE_CHECKING:
    from ftctl.analysis import Analysis
    from ftctl.backend import Backend
    from ftctl.backends.simulator.scenarios import Scenario
    from ftctl.create_request import CreateOptions
    from ftctl.environment import Clock
    from ftctl.follow import Update, Watch
    from ftctl.local_state import LocalState
    from ftctl.preview import Preview
    from ftctl.wire import MetricsQuery, Wire

_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def check_job_id(job_id: str) -> str:
    """Refuse ids that cannot be a job's before they reach a URL path or the store."""
    if not _JOB_ID.fullmatch(job_id or ""):
        shown = job_id if len(job_id) <= 60 else job_id[:57] + "..."
        raise InvalidInput(f"job id {shown!r} is not a job id: expected letters, digits, '.', '_', ':' "
                           "or '-', at most 128 characters (like ft-9a8b7c6d-...)")
    return job_id


# Plain classes and named tuples, not dataclasses: this module is on every read's path, and
# ``dataclasses`` (with ``inspect``) costs more at start-up than a read of a small job does.


class EventLog(NamedTuple):
    rows: list[Wire]
    types_present: list[str]  # in the order they first occur (read when types are asked for)
    unmatched: list[str]  # asked-for types that occur nowhere in the log


class Created:
    def __init__(self, body: dict[str, Any], warnings: list[str] | None = None, job: Wire | None = None,
                 preview: Preview | None = None) -> None:
        self.body = body
        self.warnings = [] if warnings is None else warnings
        self.job = job  # None on a dry run
        self.preview = preview  # the plan of steps and the price estimate


class PriceRefused(ApiError):
    """The price estimate says the account may not start this job (``allowed_to_proceed`` false)."""

    code = "price_not_allowed"


class Run:
    """A job's history and its reading: from the backend, or from a saved file (``job`` None)."""

    def __init__(self, job_id: str | None, job: Wire | None, rows: list[Wire], analysis: Analysis,
                 events: list[Wire] | None = None) -> None:
        self.job_id, self.job, self.rows, self.analysis = job_id, job, rows, analysis
        self.events = events  # asked for by a report; None: not fetched, or a saved history


# Time between polls when the user gives none: the simulator answers at once, the API is rate-limited.
DEFAULT_INTERVAL = {"sim": 1.0, "together": 5.0}


class Service:
    """One run's access to jobs. ``open_backend(scenario)`` is called on first use only, so bad
    input never opens a connection or a store; ``local`` is None when nothing may be written
    (a dry run)."""

    def __init__(self, backend_name: str, open_backend: Callable[[Scenario | None], Backend],
                 local: LocalState | None, *, clock: Clock | None = None) -> None:
        from ftctl.environment import Clock

        self.backend_name = backend_name
        self._open = open_backend
        self.local = local
        self.clock = clock or Clock()

    @property
    def backend(self) -> Backend:
        return self._open(None)

    def _remember(self, jobs: list[Wire], sent: dict[str, Any] | None = None) -> None:
        if self.local is not None:
            self.local.remember(jobs, sent=sent)

    def _sent(self, job_id: str) -> dict[str, Any] | None:
        return self.local.sent(job_id) if self.local is not None else None

    def create(self, options: CreateOptions, *, scenario: str | None = None, dry_run: bool = False,
               flags: dict[str, str] | None = None, on_note: Callable[[str], None] | None = None) -> Created:
        """Build and check the request; send it unless ``dry_run``. The simulator-only scenario
        goes to the backend's factory, never through the ``Backend`` interface. The checks speak
        the API's field names; here, on the CLI's side, they name the flags instead (``flags``: the
        ones the user typed, where an option has an alias).

        A training or validation value naming a local file is checked offline (a dry run too),
        then uploaded (identical bytes already there are reused) and waited on until the server
        has processed it; its id goes in the request (``ftctl.files``)."""
        from ftctl import files
        from ftctl.backends import load_scenario
        from ftctl.create_request import build_body, in_flag_words
        from ftctl.request_checks import check_body

        body = build_body(options)  # its messages name the flags already
        paths = {key: body.get(key) for key in ("training_file", "validation_file")}
        try:
            warnings = [in_flag_words(w, flags) for w in check_body(body)]
            loaded = load_scenario(self.backend_name, scenario)
            reports = files.check_create_paths(paths)
            result = Created(body, warnings)
            result.preview = preview = self._plan(body, reports.get("training_file"))
            if dry_run:  # priced only when its files are ids: a dry run uploads nothing
                self._estimate(preview, body, loaded, dry_run=True)
                return result
            backend = self._open(loaded)
            body.update(files.upload_for_create(backend, paths, on_note=on_note).ids)
            self._estimate(preview, body, loaded, dry_run=False)
            estimate = preview.estimate or {}
            if estimate.get("estimation_available") and estimate.get("allowed_to_proceed") is False:
                raise PriceRefused(f"the estimated price (${estimate.get('estimated_total_price', 0):,.2f}) is more "
                                   f"than your credit limit and balance allow (${estimate.get('user_limit', 0):,.2f}); "
                                   "no job was created: raise your limit, or ask for fewer epochs or a smaller file")
            result.job = backend.create(body)
        except InvalidInput as exc:
            # the embedded simulator's checks (its limits) are usage errors of this command too;
            # a served one's words arrive as the API's error and are left as they are
            exc.message = in_flag_words(exc.message, flags)
            raise
        self._remember([result.job], sent=body)
        return result

    def _plan(self, body: dict[str, Any], report: Any) -> Preview:
        """The plan of steps of a local training file (its offline check's ``report``)."""
        from ftctl.preview import Preview, batch_size, local_plan

        preview = Preview(batch=batch_size(body, self.backend_name))
        preview.plan, preview.plan_missing = local_plan(body, backend_name=self.backend_name, report=report)
        preview.with_total(body, preview.plan.total_steps if preview.plan is not None else None)
        return preview

    def _estimate(self, preview: Preview, body: dict[str, Any], scenario: Scenario | None, *, dry_run: bool) -> None:
        """The API's estimate. A failed one is a note, never a stop (the vendor's CLI proceeds
        too), except a refused key outside a dry run, or the simulator refusing the request."""
        from ftctl.create_request import estimate_body
        from ftctl.files import is_local_path

        local = [k for k in ("training_file", "validation_file") if is_local_path(body.get(k))]
        if local:  # the API estimates uploaded files only
            preview.estimate_error = f"the {local[0].replace('_', ' ')} is a local file, priced once uploaded"
            return
        try:
            preview.estimate = self._open(scenario).estimate_price(estimate_body(body))
        except InvalidInput:
            raise
        except AuthError:
            if not dry_run:
                raise
            preview.estimate_error = "no API key to ask for a price estimate"
        except FtctlError as exc:
            preview.estimate_error = exc.message

    def retrieve(self, job_id: str) -> Wire:
        job = self._with_reason(self.backend.retrieve(check_job_id(job_id)))
        self._remember([job])
        return job

    def _with_reason(self, job: Wire) -> Wire:
        """A failed job with its events: only they say why it failed (``wire.failure_reason``)."""
        from ftctl.wire import FAILED_STATUSES

        if job.get("status") in FAILED_STATUSES and not job.get("events") and job.get("id"):
            job = self.backend.retrieve(job["id"])
        return job

    def sent(self, job_id: str) -> dict[str, Any] | None:
        """The create body ftctl sent for ``job_id`` (its early-stopping settings), if it created it."""
        return self._sent(job_id)

    def list(self, *, limit: int | None = None) -> list[Wire]:
        from ftctl.local_state import KEEP

        jobs = self.backend.list()
        # Newest first: the cache keeps the KEEP newest, so the rest would be read only to be dropped.
        self._remember(jobs[:KEEP])
        return jobs[:limit] if limit else jobs

    def cancel(self, job_id: str) -> Wire:
        job = self.backend.cancel(check_job_id(job_id))
        self._remember([job])
        return job

    def delete(self, job_id: str) -> Wire:
        """Delete the job, then forget it locally (the recent-jobs cache and the settings sent)."""
        answer = self.backend.delete(check_job_id(job_id))
        if self.local is not None:
            self.local.forget(job_id)
        return answer

    def events(self, job_id: str, *, types: list[str] | None = None) -> list[Wire]:
        return self.event_log(job_id, types=types).rows

    def event_log(self, job_id: str, *, types: list[str] | None = None) -> EventLog:
        """The job's events, only those of ``types`` if given, and the types the whole log holds
        (so that a type that matched nothing can be told apart from a typo)."""
        if types and not all(t.strip() for t in types):
            raise InvalidInput("--type must name an event type, such as early_stopped or refund (got '')")
        rows = self.backend.events(check_job_id(job_id))  # the simulator's: made as they are written
        present: list[str] = []
        unmatched: list[str] = []
        if types:  # read once here; a whole log is only ever written out, never held
            rows = list(rows)
            present = list(dict.fromkeys(str(e.get("type") or "") for e in rows))
            wanted = {t.lower() for t in types}
            unmatched = [t for t in types if t.lower() not in {p.lower() for p in present}]
            rows = [e for e in rows if str(e.get("type") or "").lower() in wanted]
        return EventLog(rows, present, unmatched)

    def checkpoints(self, job_id: str) -> list[Wire]:
        """The job's checkpoints (the API's objects) with ftctl's ``download_id``, ``promoted``
        and ``why`` appended (``ftctl.promotion``): the job says which was promoted and why."""
        from ftctl.promotion import annotate

        rows = self.backend.checkpoints(check_job_id(job_id))
        job = self.backend.retrieve(job_id, events=False) if rows else {}
        return annotate(job_id, job, rows, self._sent(job_id))

    def run(self, job_id: str, query: MetricsQuery | None = None, *, job: Wire | None = None) -> Run:
        """The job, its metrics rows, and their reading through the rule. ``job``: already fetched."""
        from ftctl.analysis import analyse
        from ftctl.wire import MetricsQuery

        backend = self.backend
        if job is None:
            job = backend.retrieve(check_job_id(job_id), events=False, once=True)
        job = self._with_reason(job)
        rows = backend.metrics(job_id, query or MetricsQuery())
        return Run(job.get("id", job_id), job, rows, analyse(job, rows, sent=self._sent(job_id)))

    def load_run(self, job_id: str | None, from_file: str | None, query: MetricsQuery | None = None) -> Run:
        """A run from the backend, or from a saved history (``--from-file``: no backend is opened)."""
        if from_file is not None:
            if job_id is not None:
                raise InvalidInput(f"give a job id or --from-file, not both (got {job_id!r} and {from_file!r})")
            from ftctl.analysis import analyse
            from ftctl.saved_history import read

            saved = read(from_file)
            return Run(saved.job.get("id"), None, saved.rows, analyse(saved.job, saved.rows, sent=saved.sent))
        if job_id is None:
            raise InvalidInput("give a job id, or --from-file FILE to read a saved history")
        return self.run(job_id, query)

    def load_runs(self, job_ids: list[str], from_files: list[str] = (), *, events: bool = False) -> list[Run]:
        """Several runs (``report``, ``compare``): the jobs from the backend, then the saved histories
        (``--from-file``, no network); ``events``: fetch each job's event log too (a failed job's
        always: it says why)."""
        from ftctl.wire import FAILED_STATUSES

        if not job_ids and not from_files:
            raise InvalidInput("give one or more job ids, or --from-file FILE (repeatable) for saved histories")
        for job_id in job_ids:
            check_job_id(job_id)  # every id checked before the first fetch
        runs = []
        for job_id in job_ids:
            run = self.run(job_id)
            if events or (run.job or {}).get("status") in FAILED_STATUSES:
                run.events = list(self.backend.events(job_id))
            runs.append(run)
        return runs + [self.load_run(None, path) for path in from_files]

    # -- waiting -----------------------------------------------------------------------------------

    def watch(self, job_id: str) -> Watch:
        """What a wait has seen of ``job_id`` so far, with the settings ftctl sent, if it did."""
        from ftctl.follow import Watch

        return Watch(check_job_id(job_id), sent=self._sent(job_id))

    def poll_interval(self, interval: float | None) -> float:
        return interval if interval is not None else DEFAULT_INTERVAL.get(self.backend.name, 5.0)

    def wait(self, watch: Watch, *, interval: float, timeout: float | None,
             on_update: Callable[[Update], None]) -> Wire:
        """Follow the job to its end, handing every change to ``on_update``; remember its end.
        Raises ``WaitTimeout`` (the job keeps running); Ctrl-C propagates."""
        from ftctl.follow import follow

        for update in follow(self.backend, watch, interval=interval, timeout=timeout, clock=self.clock):
            on_update(update)
        self._remember([watch.job])
        return watch.job

    def wait_all(self, watches: list[Watch], *, interval: float, timeout: float | None,
                 on_update: Callable[[Watch, Update], None]) -> list[Watch]:
        """Follow several jobs at once, one poll of each per round, handing every change to
        ``on_update``; returns the jobs still running when ``timeout`` passed (they keep running)."""
        from ftctl.follow import follow_many

        try:
            for watch, update in follow_many(self.backend, watches, interval=interval, timeout=timeout,
                                             clock=self.clock):
                on_update(watch, update)
        finally:
            self._remember([w.job for w in watches if w.job])
        from ftctl.wire import TERMINAL_STATUSES

        return [w for w in watches if w.job.get("status") not in TERMINAL_STATUSES]


def metrics_json(job_id: str | None, analysis: Analysis) -> dict[str, Any]:
    """``metrics --json``: ``{"job_id", "evaluations", "early_stopping", "missing_eval_loss_steps",
    "failure"}`` (docs/contract.md; ``failure``: README, "JSON output")."""
    from ftctl.wire import failure

    columns = analysis.evaluations  # read as columns: no Evaluation made per row
    return {
        "job_id": job_id,
        "evaluations": [{"eval": i, "step": step, "eval_loss": value} for i, step, value in
                        zip(range(1, len(columns.steps) + 1), columns.steps, columns.values)],
        "early_stopping": analysis.early_stopping(),
        "missing_eval_loss_steps": columns.missing_steps,
        "failure": failure(analysis.job),
    }
