"""Together's fine-tuning API over httpx: the real backend (``docs/api.md``).

Speaks the vendor SDK's wire contract: paths under ``{base}/v1/fine-tunes``, ``Authorization:
Bearer``, its retry policy (connection errors, 408, 409, 429 and 5xx; backoff ``min(d·2^n, 10)``
seconds times a jitter in [0.75, 1]; ``retry-after-ms`` / ``Retry-After`` win when 0..60 s;
``x-should-retry`` overrides), and its error envelope. Every response is checked with
``ftctl.models`` and returned as the original wire dict, so ``--json`` prints what the API said.

The key lives in the client's default headers and nowhere else: traces show ``Bearer ****``, and
anything the server or the transport says goes through ``ftctl.redact`` before it is cut to length.

A hostile or broken server cannot exhaust ftctl: a body is read as a stream and decompressed here,
in bounded steps, and refused past ``FTCTL_MAX_RESPONSE_MB`` (lists) or ``OBJECT_LIMIT`` (one object);
every read, and the request as a whole (``FTCTL_REQUEST_DEADLINE``), has a time limit, enforced on
the socket itself (``ftctl.backends.deadline``) so that a server dripping a byte at a time is cut off.
"""

from __future__ import annotations

import codecs
import email.utils
import json
import os
import random
import re
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator
from urllib.parse import urlsplit

from ftctl.backends.lean_httpx import httpx
from ftctl import __version__
from ftctl.wire import SECRET_BODY_FIELDS, MetricsQuery, Wire
from ftctl.backend import Download
from ftctl.backends.arriving_list import ArrivingList
from ftctl.backends.deadline import Deadline
from ftctl.errors import ApiError, AuthError, DownloadInterrupted, FtctlError, InvalidInput, NotFound
from ftctl.loopback import is_loopback
from ftctl.redact import redact, remember
from ftctl.errors import ResponseError
from ftctl.shapes import plainly_valid
from ftctl.backends.together_files import FileOps

if TYPE_CHECKING:
    from ftctl.config import Config

ENV_MAX_RETRIES = "FTCTL_MAX_RETRIES"
ENV_CONNECT_TIMEOUT = "FTCTL_CONNECT_TIMEOUT"
ENV_READ_TIMEOUT = "FTCTL_READ_TIMEOUT"
ENV_RETRY_DELAY = "FTCTL_RETRY_DELAY"
ENV_ALLOW_INSECURE = "FTCTL_ALLOW_INSECURE_HTTP"
ENV_REQUEST_DEADLINE = "FTCTL_REQUEST_DEADLINE"
ENV_MAX_RESPONSE_MB = "FTCTL_MAX_RESPONSE_MB"

RETRY_STATUSES = frozenset({408, 409, 429})  # and every status >= 500
MAX_RETRY_DELAY = 10.0
MAX_RETRY_AFTER = 60.0
TRACE_BODY_LIMIT = 2000
MESSAGE_LIMIT = 300  # a server's error message, after redaction
DEADLINE_FACTOR = 3  # FTCTL_REQUEST_DEADLINE defaults to this many read timeouts
OBJECT_LIMIT = 4 * 2**20  # one job (create, retrieve, cancel): 4 MiB decoded is far past any real one
INFLATE_STEP = 2**20  # decoded bytes per step: the body grows by this much at a time, no more
ERROR_BODY_LIMIT = 2**20  # an error body is read only for its message: the rest is dropped
MAY_EXIST = "; the job may have been created, check 'ftctl list' before trying again"


@dataclass(frozen=True)
class HttpSettings:
    """How ftctl talks HTTP; from the environment (documented in the README's backend table)."""

    max_retries: int = 2  # like the vendor SDK
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    retry_delay: float = 1.0  # the first backoff; doubles per retry up to MAX_RETRY_DELAY
    allow_insecure_http: bool = False
    request_deadline: float | None = None  # one attempt, start to last byte; None: DEADLINE_FACTOR reads
    max_response_mb: float = 64.0  # a list's body, decoded

    @property
    def deadline(self) -> float:
        return self.request_deadline or self.read_timeout * DEADLINE_FACTOR

    @property
    def list_limit(self) -> int:
        return int(self.max_response_mb * 2**20)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> HttpSettings:
        env = dict(os.environ) if env is None else env
        default = cls()

        def number(name: str, fallback: float, *, whole: bool = False, zero_ok: bool = False) -> Any:
            text = env.get(name, "").strip()
            if not text:
                return fallback
            try:
                value = int(text) if whole else float(text)
            except ValueError:
                value = None
            if value is None or not (value >= 0 if zero_ok else value > 0) or value != value \
                    or value == float("inf"):
                kind = "a whole number" if whole else "a number of seconds"
                rule = ">= 0" if zero_ok else "> 0"
                raise InvalidInput(f"{name} must be {kind} {rule} (got {text!r})")
            return value

        return cls(
            max_retries=number(ENV_MAX_RETRIES, default.max_retries, whole=True, zero_ok=True),
            connect_timeout=number(ENV_CONNECT_TIMEOUT, default.connect_timeout),
            read_timeout=number(ENV_READ_TIMEOUT, default.read_timeout),
            retry_delay=number(ENV_RETRY_DELAY, default.retry_delay, zero_ok=True),
            allow_insecure_http=env.get(ENV_ALLOW_INSECURE, "").strip().lower() in ("1", "true", "yes"),
            request_deadline=number(ENV_REQUEST_DEADLINE, None),
            max_response_mb=number(ENV_MAX_RESPONSE_MB, default.max_response_mb),
        )


def api_root(base_url: str) -> str:
    """The host root the user gave, checked; a trailing ``/v1`` (the old SDK's form) is dropped."""
    text = base_url.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"--base-url / TOGETHER_BASE_URL must be an http(s) URL with a host, like "
                           f"https://api.together.ai (got {base_url!r})")
    if parts.query or parts.fragment:
        raise InvalidInput(f"--base-url / TOGETHER_BASE_URL must not have a query or fragment (got {base_url!r})")
    return text[:-3] if text.endswith("/v1") else text


class TogetherBackend(FileOps):
    name = "together"

    def __init__(self, config: Config, *, trace: Callable[[str], None] | None = None,
                 settings: HttpSettings | None = None, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 create_headers: dict[str, str] | None = None) -> None:
        self._create_headers = dict(create_headers or {})  # e.g. a served simulator's scenario
        key = (config.api_key or "").strip()
        if not key:
            raise AuthError("TOGETHER_API_KEY is not set: export TOGETHER_API_KEY=<your key> (from "
                            "https://api.together.ai/settings/api-keys), or use --backend sim for the simulator")
        if not re.fullmatch(r"[\x21-\x7e]+", key):  # never echo it: it may be a real key pasted badly
            raise AuthError("TOGETHER_API_KEY contains spaces, control or non-ASCII characters; "
                            "set it to the key exactly as Together shows it")
        self.settings = settings or HttpSettings.from_env()
        self.root = api_root(config.base_url)
        host = urlsplit(self.root).hostname or ""
        if self.root.startswith("http://") and not is_loopback(host) and not self.settings.allow_insecure_http:
            raise InvalidInput(f"refusing to send TOGETHER_API_KEY over plain http to {host}: use https, "
                               f"or set {ENV_ALLOW_INSECURE}=1 if this host is trusted")
        self._key = key
        remember(key)
        self._trace = trace
        self._transport = transport  # tests: the presigned PUTs go through it too (without the key)
        self._sleep = sleep
        self._deadline = Deadline()
        if transport is None:
            transport = _ByScheme(self._deadline)
        self._client = httpx.Client(
            base_url=self.root,
            headers={"Authorization": f"Bearer {key}", "Accept": "application/json",
                     "Accept-Encoding": "gzip, deflate",  # what _Body decodes, in bounded steps
                     "User-Agent": f"ftctl/{__version__}"},
            timeout=httpx.Timeout(self.settings.read_timeout, connect=self.settings.connect_timeout),
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    # -- the API -------------------------------------------------------------------------------

    def create(self, body: Wire) -> Wire:
        for name in SECRET_BODY_FIELDS:
            remember(body.get(name) if isinstance(body.get(name), str) else None)
        # Not idempotent: a read timeout may mean the job exists, so it is not retried blindly, and an
        # answer that is lost, cut or garbled says so (the request went through: the job may exist).
        try:
            return self._job(self._request("POST", "/v1/fine-tunes", body=body, idempotent=False,
                                           headers=self._create_headers, limit=OBJECT_LIMIT), "the new job")
        except ResponseError as exc:
            raise ResponseError(exc.message + MAY_EXIST) from None

    def estimate_price(self, body: Wire) -> Wire:
        data = self._request("POST", "/v1/fine-tunes/estimate-price", body=body)
        if not isinstance(data, dict):
            raise ResponseError("the API's price estimate is not a JSON object")
        return data

    def retrieve(self, job_id: str, *, events: bool = True, once: bool = False) -> Wire:
        if once and not events:  # the API has no retrieve without the event log: its list item is that
            listed = self._listed(job_id)
            if listed is not None:
                return listed
        return self._job(self._request("GET", f"/v1/fine-tunes/{job_id}", limit=OBJECT_LIMIT), f"job {job_id}")

    def _listed(self, job_id: str) -> Wire | None:
        """``job_id``'s item in ``GET /v1/fine-tunes`` (the truncated job: ``events`` empty), when it
        carries the progress a reading of its metrics needs; None: retrieve it instead. A job of
        100,000 evaluations embeds 100,000 events (26 MB) in its retrieve answer; its list item is 1 kB."""
        for item in _unwrapped(self._request("GET", "/v1/fine-tunes"), "data", "the job list"):
            if isinstance(item, dict) and item.get("id") == job_id:
                if all(isinstance(item.get(k), int) for k in ("steps_completed", "total_steps")):
                    return self._job(item, f"job {job_id}")
                return None
        return None

    def list(self) -> list[Wire]:
        return self._items(self._request("GET", "/v1/fine-tunes"), "Job", "data", "the job list")

    def cancel(self, job_id: str) -> Wire:
        return self._job(self._request("POST", f"/v1/fine-tunes/{job_id}/cancel", limit=OBJECT_LIMIT),
                         f"cancelling {job_id}")

    def events(self, job_id: str) -> list[Wire]:
        return self._items(self._request("GET", f"/v1/fine-tunes/{job_id}/events"), "Event", "data",
                           f"the events of {job_id}")

    def checkpoints(self, job_id: str) -> list[Wire]:
        return self._items(self._request("GET", f"/v1/fine-tunes/{job_id}/checkpoints"), "Checkpoint", "data",
                           f"the checkpoints of {job_id}")

    def metrics(self, job_id: str, query: MetricsQuery = MetricsQuery()) -> list[Wire]:
        data = self._request("GET", f"/v1/fine-tunes/{job_id}/metrics", params=query.params(), listing="metrics")
        return self._items(data, "MetricsRow", "metrics", f"the metrics of {job_id}")

    def delete(self, job_id: str) -> Wire:
        data = self._request("DELETE", f"/v1/fine-tunes/{job_id}")
        if not isinstance(data, dict):
            raise ResponseError(f"the API's answer to deleting {job_id} is not a JSON object")
        return data

    @contextmanager
    def open_download(self, job_id: str, *, step: int | None, checkpoint: str,
                      start: int = 0) -> Iterator[Download]:
        """One streamed GET from byte ``start`` (``Range: bytes=start-``), retried like the other
        requests until the body starts; redirects (to a presigned URL) are followed, and httpx drops
        the key when one leaves this host."""
        params: dict[str, Any] = {"ft_id": job_id, "checkpoint": checkpoint}
        if step is not None:
            params["checkpoint_step"] = step
        path = "/v1/finetune/download"
        attempts = self.settings.max_retries + 1
        for attempt in range(attempts):
            self._trace_request("GET", path, params, None, attempt, attempts)
            self._note(f"> Range: bytes={start}-")
            request = self._client.build_request("GET", path, params=params, headers={
                "Range": f"bytes={start}-", "x-ftctl-retry-count": str(attempt)})
            started = time.monotonic()
            try:
                response = self._client.send(request, stream=True, follow_redirects=True)
            except httpx.RequestError as exc:
                if attempt == attempts - 1:
                    raise ApiError(f"cannot reach the API at {self.root}: {self._describe(exc)} "
                                   f"({_attempts(attempts)})") from None
                delay = self._backoff(attempt)
                self._note(f"* {self._describe(exc)}; retrying in {delay:.2f} s")
                self._sleep(delay)
                continue
            try:
                self._note(f"< {response.status_code} {response.reason_phrase} in "
                           f"{(time.monotonic() - started) * 1000:.0f} ms, "
                           f"{response.headers.get('content-type', 'no content-type')}, "
                           f"content-range {response.headers.get('content-range', '-')}, "
                           f"content-length {response.headers.get('content-length', '-')}")
                if not response.is_success:  # read for its message only, and only so much of it
                    try:
                        content = _read_body(response, ERROR_BODY_LIMIT, time.monotonic() + self.settings.deadline,
                                             truncate=True)
                    except (_BadEncoding, _TooLate, httpx.TransportError):
                        content = b""
                    failed = _in_memory(response, request, content)
                    if attempt < attempts - 1 and self._should_retry(failed):
                        delay = self._retry_delay(failed, attempt)
                        self._note(f"* HTTP {response.status_code}; retrying in {delay:.2f} s")
                        self._sleep(delay)
                        continue
                    raise self._failure(failed, "GET", path, attempt + 1)
                offset, total = _extent(response)
                yield Download(total, offset, _attachment_name(response.headers.get("content-disposition", "")),
                               response.headers.get("content-type", ""), self._body(response))
                return
            finally:
                response.close()
        raise AssertionError("unreachable")

    def _body(self, response: httpx.Response) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes()  # as they arrive: a broken stream loses nothing received
        except httpx.TransportError as exc:
            raise DownloadInterrupted(f"the download from {self.root} broke off: {self._describe(exc)}") from None

    # -- checking what came back -----------------------------------------------------------------

    @staticmethod
    def _job(data: Any, what: str) -> Wire:
        if not (type(data) is dict and plainly_valid("Job", [data])):  # pydantic only for the unusual
            from ftctl.models import Job, parse

            parse(Job, data, what)
        return data

    @staticmethod
    def _items(data: Any, shape: str, key: str, what: str) -> list[Wire]:
        items = _unwrapped(data, key, what)
        if not plainly_valid(shape, items):  # pydantic accepts it leniently or names the field
            from ftctl import models

            models.check_list(getattr(models, shape), data, key, what)
        return items

    # -- one request, with retries ---------------------------------------------------------------

    def _request(self, method: str, path: str, *, body: Wire | None = None,
                 params: dict[str, Any] | None = None, idempotent: bool = True,
                 headers: dict[str, str] | None = None, form: dict[str, str] | None = None,
                 accept: frozenset[int] = frozenset(), limit: int | None = None,
                 listing: str | None = None) -> Any:
        """The decoded JSON of a 2xx answer; the response itself for a status in ``accept`` (the
        upload's 302 and 409). ``form`` goes as multipart/form-data fields, as the SDK sends them.
        ``listing``: the answer is ``{listing: [...]}``, a long list decoded as it arrives."""
        attempts = self.settings.max_retries + 1
        arriving = ArrivingList(listing) if listing else None
        limit = min(limit or self.settings.list_limit, self.settings.list_limit)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            self._trace_request(method, path, params, body, attempt, attempts)
            started = time.monotonic()
            try:
                response = self._exchange(method, path, body, params, attempt, limit, headers=headers,
                                          form=form, arriving=arriving)
            except _GaveUp as exc:  # too slow or too big: asking again would only repeat it
                raise ApiError(exc.message + ("" if idempotent else MAY_EXIST)) from None
            except httpx.RequestError as exc:
                reason = self._describe(exc)
                sent = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                if not idempotent and sent:
                    raise ApiError(f"{method} {path} to {self.root} failed after the request was sent "
                                   f"({reason}){MAY_EXIST}") from None
                if last:
                    raise ApiError(f"cannot reach the API at {self.root}: {reason} "
                                   f"({_attempts(attempts)})") from None
                delay = self._backoff(attempt)
                self._note(f"* {reason}; retrying in {delay:.2f} s")
                self._sleep(delay)
                continue
            elapsed = time.monotonic() - started
            self._trace_response(response, elapsed)
            if response.status_code in accept:
                return response
            if response.is_success:
                decoded = arriving.result(response.content) if arriving is not None else None
                return self._decode(response, method, path) if decoded is None else decoded
            if not last and self._should_retry(response):
                delay = self._retry_delay(response, attempt)
                self._note(f"* HTTP {response.status_code}; retrying in {delay:.2f} s")
                self._sleep(delay)
                continue
            raise self._failure(response, method, path, attempt + 1)
        raise AssertionError("unreachable")  # the loop always returns or raises

    def _exchange(self, method: str, path: str, body: Wire | None, params: dict[str, Any] | None,
                  attempt: int, limit: int, *, headers: dict[str, str] | None = None,
                  form: dict[str, str] | None = None, arriving: ArrivingList | None = None) -> httpx.Response:
        """One attempt: send, then read the whole body within the size and time limits. The answer
        is a plain in-memory response (decoded body, no content-encoding) for the rest to read;
        ``arriving`` decodes a successful answer's list meanwhile."""
        deadline = self.settings.deadline
        request = self._client.build_request(
            method, path, json=body, params=params, headers={"x-ftctl-retry-count": str(attempt), **(headers or {})},
            files={k: (None, v) for k, v in form.items()} if form is not None else None)
        with self._deadline.within(deadline) as until:
            try:
                streamed = self._client.send(request, stream=True)
            except httpx.TimeoutException:
                if time.monotonic() >= until:
                    raise _GaveUp(self._too_slow(method, path, deadline)) from None
                raise
            try:
                cap = limit if streamed.is_success else ERROR_BODY_LIMIT
                if arriving is not None:
                    arriving.restart()
                    if not (streamed.is_success and _utf8(streamed)):
                        arriving = None
                content = _read_body(streamed, cap, until, truncate=not streamed.is_success,
                                     arrived=arriving.feed if arriving is not None else None)
            except httpx.TimeoutException:
                if time.monotonic() >= until:
                    raise _GaveUp(self._too_slow(method, path, deadline)) from None
                raise
            except _TooLarge:
                raise _GaveUp(f"the API's response to {method} {path} is larger than {_mib(limit)} "
                              f"decoded ({ENV_MAX_RESPONSE_MB} for lists); refused") from None
            except _TooLate:
                raise _GaveUp(self._too_slow(method, path, deadline)) from None
            except _BadEncoding as exc:
                raise ResponseError(f"the API's response to {method} {path} {exc}") from None
            finally:
                streamed.close()
        return _in_memory(streamed, request, content)

    def _too_slow(self, method: str, path: str, deadline: float) -> str:
        return (f"the API at {self.root} did not finish answering {method} {path} within {deadline:g} s "
                f"({ENV_REQUEST_DEADLINE}); gave up")

    @staticmethod
    def _should_retry(response: httpx.Response) -> bool:
        forced = response.headers.get("x-should-retry", "").lower()
        if forced in ("true", "false"):
            return forced == "true"
        return response.status_code in RETRY_STATUSES or response.status_code >= 500

    def _backoff(self, attempt: int) -> float:
        return min(self.settings.retry_delay * 2.0 ** attempt, MAX_RETRY_DELAY) * (1 - 0.25 * random.random())

    def _retry_delay(self, response: httpx.Response, attempt: int) -> float:
        wait = retry_after(response.headers)
        return wait if wait is not None else self._backoff(attempt)

    def _decode(self, response: httpx.Response, method: str, path: str) -> Any:
        text = response.text
        if not text.strip():
            raise ResponseError(f"the API sent an empty response to {method} {path} "
                                f"(HTTP {response.status_code}); expected JSON")
        try:
            data = json.loads(text)  # bare NaN/Infinity tokens are accepted, as Python's json does
            # "\ud800" alone is valid JSON but no character: it would crash whatever prints it
            return _without_lone_surrogates(data) if _SURROGATE_ESCAPE.search(text) else data
        except (ValueError, RecursionError):
            raise ResponseError(f"the API's response to {method} {path} is not valid JSON "
                                f"(HTTP {response.status_code}, {len(response.content)} bytes, "
                                f"{_what_it_was(text)})") from None

    def _failure(self, response: httpx.Response, method: str, path: str, tries: int) -> FtctlError:
        status = response.status_code
        message = server_message(response)
        where = f"HTTP {status} from {method} {path}"
        if tries > 1:
            where += f", {_attempts(tries)}"
        if status in (401, 403):
            return AuthError(f"the API rejected the key: {message} ({where})",
                             hint="check TOGETHER_API_KEY")
        if status == 404:
            return NotFound(f"{message} ({where})")
        return ApiError(f"{message} ({where})")

    # -- tracing (--debug) -----------------------------------------------------------------------

    def _note(self, line: str) -> None:
        if self._trace is not None:
            self._trace(redact(line))

    def _trace_request(self, method: str, path: str, params: dict[str, Any] | None, body: Wire | None,
                       attempt: int, attempts: int) -> None:
        if self._trace is None:
            return
        url = httpx.URL(self.root + path, params=params or None)
        self._note(f"> {method} {url} (attempt {attempt + 1} of {attempts})")
        self._note("> Authorization: Bearer ****")
        if body is not None:
            shown = {k: ("****" if k in SECRET_BODY_FIELDS and v else v) for k, v in body.items()}
            self._note("> " + _clip(json.dumps(shown, separators=(",", ":"))))

    def _trace_response(self, response: httpx.Response, elapsed: float) -> None:
        if self._trace is None:
            return
        kind = response.headers.get("content-type", "no content-type")
        self._note(f"< {response.status_code} {response.reason_phrase} in {elapsed * 1000:.0f} ms, "
                   f"{len(response.content)} bytes, {kind}")
        for name in ("retry-after", "retry-after-ms", "x-should-retry"):
            if name in response.headers:
                self._note(f"< {name}: {response.headers[name]}")
        if response.content:
            self._note("< " + _clip(response.text))

    @staticmethod
    def _describe(exc: httpx.RequestError) -> str:
        if isinstance(exc, httpx.TimeoutException):
            kind = {httpx.ConnectTimeout: "connect", httpx.ReadTimeout: "read",
                    httpx.WriteTimeout: "write", httpx.PoolTimeout: "pool"}.get(type(exc), "")
            return f"{kind} timeout".strip() + f" ({ENV_CONNECT_TIMEOUT}, {ENV_READ_TIMEOUT})"
        reason = redact(str(exc)).strip() or type(exc).__name__  # a status line may echo the key
        return _short(reason.splitlines()[0])


class _ByScheme(httpx.BaseTransport):
    """httpx's transport, one per scheme, each behind the request deadline. The TLS one (a verifying
    context: the CA bundle loaded, some 30 ms) is made for the first https request, so a client of
    a plain-http loopback simulator never builds it, and a redirect from there to https (a
    download's presigned URL) is still verified."""

    def __init__(self, deadline: Deadline) -> None:
        self._deadline = deadline
        self._plain: httpx.HTTPTransport | None = None
        self._tls: httpx.HTTPTransport | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "https":
            if self._tls is None:
                self._tls = self._deadline.install(httpx.HTTPTransport())
            return self._tls.handle_request(request)
        if self._plain is None:  # never sends TLS: no certificates to load
            self._plain = self._deadline.install(httpx.HTTPTransport(verify=False))
        return self._plain.handle_request(request)

    def close(self) -> None:
        for transport in (self._plain, self._tls):
            if transport is not None:
                transport.close()


def _unwrapped(data: Any, key: str, what: str) -> list[Any]:
    """The list in the API's ``{key: [...]}`` envelope (``models.unwrap_list`` says what is wrong)."""
    if type(data) is dict and type(data.get(key)) is list:
        return data[key]
    from ftctl.models import unwrap_list

    return unwrap_list(data, key, what)


def retry_after(headers: httpx.Headers) -> float | None:
    """The server's wait, when it names one between 0 and 60 s (``retry-after-ms`` first)."""
    seconds: float | None = None
    try:
        if "retry-after-ms" in headers:
            seconds = float(headers["retry-after-ms"]) / 1000
    except ValueError:
        seconds = None
    if seconds is None and "retry-after" in headers:
        text = headers["retry-after"].strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                when = None
            if when is not None and when.tzinfo is not None:
                seconds = when.timestamp() - time.time()
    if seconds is None or seconds != seconds or not 0 <= seconds <= MAX_RETRY_AFTER:
        return None
    return seconds


def _extent(response: httpx.Response) -> tuple[int, int]:
    """Where the body starts and the archive's total size: from Content-Range on a 206, from
    Content-Length on a 200 (the server sent the whole archive, ignoring the range)."""
    if response.status_code == 206:
        match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+)\s*", response.headers.get("content-range", ""))
        if match:
            return int(match[1]), int(match[3])
        raise ResponseError("the API answered the download with 206 but no usable Content-Range "
                            f"(got {response.headers.get('content-range')!r})")
    length = response.headers.get("content-length", "")
    if length.isdigit():
        return 0, int(length)
    raise ResponseError("the API did not say how large the archive is (no Content-Range or Content-Length)")


def _attachment_name(header: str) -> str:
    match = re.search(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)"?', header)
    return match[1].strip() if match else ""


def server_message(response: httpx.Response) -> str:
    """What the server said went wrong, in one line: the error envelope's message, the RPC style's
    message and details, an HTML page's title, or the start of whatever else it sent."""
    text = response.text
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    message = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            message = str(error["message"])
        elif isinstance(error, str) and error:
            message = error
        elif data.get("message"):
            message = str(data["message"])
            details = [d.get("detail") for d in data.get("details") or [] if isinstance(d, dict) and d.get("detail")]
            if details:
                message += ": " + "; ".join(map(str, details))
    if message is None:
        reason = response.reason_phrase or "error"
        message = reason if not text.strip() else f"{reason}; the body was {_what_it_was(text)}"
    return _short(message)


def _short(message: str) -> str:
    """One line of at most MESSAGE_LIMIT characters, redacted first: a key cut in two is harder to find."""
    return " ".join(redact(message).split())[:MESSAGE_LIMIT]


def _what_it_was(text: str) -> str:
    if not text.strip():
        return "empty"
    title = re.search(r"<title[^>]*>(.*?)</title>|<h1[^>]*>(.*?)</h1>", text, re.I | re.S)
    if title or text.lstrip()[:15].lower().startswith(("<!doctype", "<html")):
        words = " ".join(re.sub(r"<[^>]+>", " ", (title.group(1) or title.group(2)) if title else "").split())
        return f"an HTML page{f' ({words!r})' if words else ''}, not JSON"
    start = " ".join(redact(text[:10_000]).split())
    return f"starting {start[:60]!r}"


def _clip(text: str) -> str:
    text = " ".join(redact(text).split())
    return text if len(text) <= TRACE_BODY_LIMIT else text[:TRACE_BODY_LIMIT] + f"... ({len(text)} characters)"


def _attempts(n: int) -> str:
    return f"after {n} attempt{'s' if n != 1 else ''}"


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _without_lone_surrogates(value: Any) -> Any:
    """``value`` with each lone surrogate in its strings (keys too) replaced by U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_without_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    return value


def _mib(n: int) -> str:
    return f"{n / 2**20:g} MiB"


class _GaveUp(Exception):
    """Too slow or too large: not retried."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _TooLarge(Exception):
    pass


class _TooLate(Exception):
    pass


class _BadEncoding(Exception):
    pass


def _in_memory(streamed: httpx.Response, request: httpx.Request, content: bytes) -> httpx.Response:
    """``streamed`` as a plain response holding ``content``, its decoded body."""
    kept = [(k, v) for k, v in streamed.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
    return httpx.Response(streamed.status_code, headers=kept, content=content, request=request,
                          extensions={k: v for k, v in streamed.extensions.items()
                                      if k in ("reason_phrase", "http_version")})


def _utf8(response: httpx.Response) -> bool:
    """Whether ``response.text`` will read the body as UTF-8 (what ``ArrivingList`` decodes)."""
    charset = response.charset_encoding
    if charset is None:
        return True
    try:
        return codecs.lookup(charset).name == "utf-8"
    except LookupError:
        return False


def _read_body(response: httpx.Response, cap: int, until: float, *, truncate: bool = False,
               arrived: Callable[[bytearray], None] | None = None) -> bytes:
    """The body, decoded, at most ``cap`` bytes (past it: ``_TooLarge``, or with ``truncate`` the
    first ``cap`` bytes), read before the monotonic time ``until`` (``_TooLate``). gzip and deflate
    are inflated here, ``max_length`` at a time, so a small bomb never becomes a big buffer.
    ``arrived`` is handed the body so far each time it grows."""
    if response.is_stream_consumed:  # built in memory (a mock transport): already read and decoded
        if len(response.content) > cap and not truncate:
            raise _TooLarge()
        if arrived is not None:
            arrived(bytearray(response.content))
        return response.content[:cap]
    encodings = [e.strip().lower() for e in response.headers.get("content-encoding", "").split(",")]
    encodings = [e for e in encodings if e and e != "identity"]
    if len(encodings) > 1 or (encodings and encodings[0] not in ("gzip", "x-gzip", "deflate")):
        raise _BadEncoding(f"is in an encoding ftctl does not read ({', '.join(encodings)!r}); "
                           "it asks for gzip or deflate")
    inflate = zlib.decompressobj(zlib.MAX_WBITS | 32) if encodings else None  # 32: zlib or gzip header
    body = bytearray()
    for raw in response.iter_raw():
        if time.monotonic() >= until:
            raise _TooLate()
        data = raw
        while data:
            if inflate is None:
                out, data = data, b""
            else:
                try:
                    out = inflate.decompress(data, min(cap - len(body) + 1, INFLATE_STEP))
                except zlib.error as exc:
                    raise _BadEncoding(f"could not be decompressed ({exc})") from None
                data = inflate.unconsumed_tail
            body += out
            if len(body) > cap:
                if truncate:
                    return bytes(body[:cap])
                raise _TooLarge()
            if arrived is not None and out:
                arrived(body)
            if inflate is not None and inflate.eof:
                data = b""
    return bytes(body)
