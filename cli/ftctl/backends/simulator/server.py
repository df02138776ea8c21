"""``ftctl sim serve``: the simulator over HTTP, with Together's paths, shapes and error envelope
(``docs/api.md`` §2), so that ftctl's httpx backend and the vendor's own SDK and ``tg`` CLI can
be pointed at it.

It wraps THE simulator (``ftctl.backends.simulator.backend.Simulator``: the same store under
``FTCTL_HOME``, the same speed), it does not reimplement it. Requests are handled on the event
loop's one thread, so the simulator's SQLite connection is used from one thread only.

Beyond the API: a job's loss curve can be chosen per request with the ``X-Ftctl-Sim-Scenario``
header (a preset name, or a scenario as inline JSON), or for every job with ``--scenario``; and,
with ``--faults``, ``/_sim/faults`` queues faults for the next requests (``faults.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
import json
import re
import signal
import socket
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Iterable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Match, Route

from ftctl.wire import MetricsQuery
from ftctl.errors import ApiError, FtctlError, InvalidInput, NotFound
from ftctl.request_checks import check_id
from ftctl.wire import dumps, list_pieces
from ftctl.backends.simulator import scenarios
from ftctl.backends.simulator.faults import Fault, Faults, FaultSpecError

if TYPE_CHECKING:
    from ftctl.backends.simulator.backend import Simulator
    from ftctl.backends.simulator.scenarios import Scenario

SCENARIO_HEADER = scenarios.HEADER.lower()  # what `ftctl create --sim-scenario` sends
FAULTS_PATH = "/_sim/faults"
GRACEFUL_SHUTDOWN = 3.0  # seconds in-flight requests (e.g. a slow fault) get on Ctrl-C / SIGTERM
# Hostile or broken clients: a body is read as it arrives and refused past MAX_BODY (never buffered
# whole); a client gets REQUEST_TIMEOUT seconds to send a whole request (headers and body), else
# it is answered 408 and dropped; past MAX_CONNECTIONS open at once, a new one gets 503 and is closed.
MAX_BODY = 16 * 1024 * 1024
REQUEST_TIMEOUT = 10.0
MAX_CONNECTIONS = 500
KEPT_BYTES = 64 * 2**20  # finished jobs' encoded metrics answers kept in memory (Kept)
# ``GET /v3/whoami``: the vendor's CLI asks who the key belongs to before any command.
IDENTITY = {"type": "project_api_key", "api_key": {"id": "sim-key"},
            "organization": {"id": "sim-org", "name": "ftctl simulator"},
            "project": {"id": "sim-project", "name": "ftctl simulator", "slug": "ftctl-sim"}}

Log = Callable[[str], None]


# -- responses ------------------------------------------------------------------------------------


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Strict JSON: non-finite numbers as "NaN"/"Infinity"/"-Infinity", as ftctl writes them."""
    return Response(dumps(value), status_code=status, headers=headers, media_type="application/json")


def list_response(key: str, items: Iterable[Any], *,
                  keep: Callable[[list[bytes]], None] | None = None) -> Response:
    """``json_response({key: items})``, byte for byte, sent a chunk of items at a time as they are
    made and encoded: 100,000 metrics rows (10 MB) start arriving at once instead of after the
    whole document is built. The first chunk is made here, so a failure there is still an error
    answer. ``keep`` is handed the encoded pieces once all were sent."""
    pieces = list_pieces(items)
    first = "{" + dumps(key) + ":" + next(pieces) + next(pieces)

    async def body() -> AsyncIterator[bytes]:
        sent = [first.encode()]
        yield sent[0]
        for piece in pieces:
            sent.append(piece.encode())
            yield sent[-1]
        sent.append(b"}")
        yield sent[-1]
        if keep is not None:
            keep(sent)

    return StreamingResponse(body(), media_type="application/json")


async def _replayed(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


class Kept:
    """Encoded answers about jobs that have ended (``Simulator.settled``: they never change), the
    most recently used first, within ``budget`` bytes: a finished job's 100,000 metrics rows are
    made and encoded once, not on every read (a dashboard, a CI poll, the vendor's CLI)."""

    def __init__(self, budget: int = KEPT_BYTES) -> None:
        self.budget, self.size = budget, 0
        self.answers: OrderedDict[Any, tuple[list[bytes], int]] = OrderedDict()

    def get(self, key: Any) -> list[bytes] | None:
        if key not in self.answers:
            return None
        self.answers.move_to_end(key)
        return self.answers[key][0]

    def put(self, key: Any, pieces: list[bytes]) -> None:
        size = sum(map(len, pieces))
        if size > self.budget or key in self.answers:
            return
        self.answers[key] = (pieces, size)
        self.size += size
        while self.size > self.budget:
            _, (_, dropped) = self.answers.popitem(last=False)
            self.size -= dropped


def error_response(status: int, message: str, *, type_: str = "invalid_request_error", code: str | None = None,
                   param: str | None = None, headers: dict[str, str] | None = None) -> Response:
    """The API's error envelope (``docs/api.md`` §1)."""
    return json_response({"error": {"message": message, "type": type_, "param": param, "code": code}},
                         status, headers)


class BodyTooLarge(FtctlError):
    code = "request_too_large"
    limit = MAX_BODY


def body_limit(path: str) -> int:
    """The largest body a request to ``path`` may carry: a signed upload URL takes a whole dataset
    (``server_files.MAX_UPLOAD``, spooled to disk as it arrives), everything else ``MAX_BODY``."""
    from ftctl.backends.simulator.server_files import MAX_UPLOAD, UPLOADS

    return MAX_UPLOAD if path.startswith(UPLOADS) else MAX_BODY


def _too_large(what: str, limit: int = MAX_BODY) -> Response:
    # Connection: close, so the server stops reading a body it has refused.
    return error_response(413, f"the request body {what}: at most {limit} bytes ({limit // 2**20} MiB)",
                          code=BodyTooLarge.code, headers={"Connection": "close"})


def _for_error(exc: FtctlError) -> Response:
    if isinstance(exc, BodyTooLarge):
        return _too_large(exc.message, exc.limit)
    if isinstance(exc, NotFound):
        return error_response(404, exc.message, code=exc.code)
    if isinstance(exc, InvalidInput) or exc.code == "conflict":
        return error_response(400, exc.message, code=exc.code)
    return error_response(500, exc.message, type_="server_error", code=exc.code)


# -- the API ----------------------------------------------------------------------------------------


def create_app(simulator: Simulator, *, log: Log, faults: Faults | None = None,
               scenario: Scenario | None = None, debug: bool = False) -> Any:
    """The ASGI app: the routes, wrapped in the bearer-token check, the faults and the access log."""

    answers = Kept()
    # A message naming the server's own files (a damaged or unwritable store) is for its log only.
    private = str(simulator.store.path.parent)

    def endpoint(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except FtctlError as exc:
                if private in exc.message:
                    log(f"store error: {exc.message}")
                    return error_response(500, "the simulator's store failed; the server's log says why",
                                          type_="server_error", code="store_error")
                return _for_error(exc)
            except ClientDisconnect:  # gone mid-body (or dropped by the request deadline): no one to answer
                return Response(status_code=400)
            except FaultSpecError as exc:
                return error_response(400, str(exc), code="bad_fault")
            except Exception as exc:  # a bug: one line on the server's stderr, an envelope to the client
                if debug:
                    import traceback

                    traceback.print_exc()
                log(f"internal error: {type(exc).__name__}: {exc}")
                return error_response(500, f"internal error in the simulator: {type(exc).__name__}",
                                      type_="server_error")

        return run

    async def list_jobs(request: Request) -> Response:
        return json_response({"data": simulator.list()})

    async def create_job(request: Request) -> Response:
        body = await _json_body(request)
        chosen = _header_scenario(request) or scenario
        return json_response(simulator.create(body, scenario=chosen))

    async def retrieve(request: Request) -> Response:
        return json_response(simulator.retrieve(request.path_params["job_id"]))

    async def cancel(request: Request) -> Response:
        return json_response(simulator.cancel(request.path_params["job_id"]))

    async def events(request: Request) -> Response:
        return json_response({"data": simulator.events(request.path_params["job_id"])})

    async def checkpoints(request: Request) -> Response:
        return json_response({"data": simulator.checkpoints(request.path_params["job_id"])})

    async def metrics(request: Request) -> Response:
        q = request.query_params
        query = MetricsQuery(_int_param(q, "global_step_from"), _int_param(q, "global_step_to"),
                             q.get("logged_at_from") or None, q.get("logged_at_to") or None,
                             _int_param(q, "resolution", minimum=1))
        job_id = request.path_params["job_id"]
        settled = simulator.settled(job_id)
        key = None if settled is None else (settled, tuple(sorted(query.params().items())))
        kept = answers.get(key)
        if kept is not None:
            return StreamingResponse(_replayed(kept), media_type="application/json")
        return list_response("metrics", simulator.metrics(job_id, query),
                             keep=None if key is None else lambda pieces: answers.put(key, pieces))

    async def model_limits(request: Request) -> Response:
        name = request.query_params.get("model_name")
        if not name:
            raise InvalidInput("model_name is required (GET /v1/fine-tunes/models/limits?model_name=...)")
        check_id("model_name", name)
        return json_response(limits(name))

    async def estimate_price(request: Request) -> Response:
        body = await _json_body(request)
        from ftctl.backends.simulator.server_files import estimate_unavailable

        chosen = _header_scenario(request) or scenario
        return json_response(estimate_unavailable(simulator, body) or simulator.estimate_price(body, scenario=chosen))

    async def delete_job(request: Request) -> Response:
        return json_response(simulator.delete(request.path_params["job_id"]))

    async def download(request: Request) -> Response:
        """``docs/api.md`` §5: the archive as application/octet-stream, any one byte range
        as 206 with Content-Range (the vendor's client probes with ``Range: bytes=0-1`` for the total)."""
        from ftctl.backends.simulator.archive import CONTENT_TYPE

        q = request.query_params
        job_id = q.get("ft_id") or ""
        if not job_id:
            raise InvalidInput("ft_id is required (GET /v1/finetune/download?ft_id=ft-...&checkpoint=merged)")
        step = _int_param(q, "checkpoint_step")
        checkpoint = q.get("checkpoint") or None
        if step is None and checkpoint is None:
            raise InvalidInput("checkpoint is required when checkpoint_step is not set "
                               "(merged, adapter or model_output_path)")
        built, name = simulator.archive(job_id, step=step, checkpoint=checkpoint)
        total = built.size
        headers = {"Accept-Ranges": "bytes", "Content-Disposition": f'attachment; filename="{name}"'}
        wanted = byte_range(request.headers.get("range"), total)
        if wanted is False:
            return error_response(416, f"the range {request.headers.get('range')!r} is outside the archive's "
                                       f"{total} bytes", headers={"Content-Range": f"bytes */{total}"})
        start, end = wanted or (0, total)
        if wanted:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{total}"
        headers["Content-Length"] = str(end - start)
        return StreamingResponse(built.pieces(start, end), status_code=206 if wanted else 200, headers=headers,
                                 media_type=CONTENT_TYPE)

    async def whoami(request: Request) -> Response:
        return json_response(IDENTITY)

    async def list_faults(request: Request) -> Response:
        return json_response({"data": faults.pending()})

    async def add_faults(request: Request) -> Response:
        body = await _json_body(request, allow_list=True)
        added = [faults.add(spec).to_json() for spec in (body if isinstance(body, list) else [body])]
        return json_response({"data": added})

    async def clear_faults(request: Request) -> Response:
        faults.clear()
        return json_response({"data": []})

    routes = [
        Route("/v1/fine-tunes", endpoint(list_jobs), methods=["GET"]),
        Route("/v1/fine-tunes", endpoint(create_job), methods=["POST"]),
        Route("/v1/fine-tunes/models/limits", endpoint(model_limits), methods=["GET"]),
        Route("/v1/fine-tunes/estimate-price", endpoint(estimate_price), methods=["POST"]),
        Route("/v1/fine-tunes/{job_id}", endpoint(retrieve), methods=["GET"]),
        Route("/v1/fine-tunes/{job_id}", endpoint(delete_job), methods=["DELETE"]),
        Route("/v1/finetune/download", endpoint(download), methods=["GET"]),
        Route("/v1/fine-tunes/{job_id}/cancel", endpoint(cancel), methods=["POST"]),
        Route("/v1/fine-tunes/{job_id}/events", endpoint(events), methods=["GET"]),
        Route("/v1/fine-tunes/{job_id}/checkpoints", endpoint(checkpoints), methods=["GET"]),
        Route("/v1/fine-tunes/{job_id}/metrics", endpoint(metrics), methods=["GET"]),
        Route("/v3/whoami", endpoint(whoami), methods=["GET"]),
    ]
    from ftctl.backends.simulator import server_files

    routes += server_files.routes(simulator, endpoint, json_response)
    if faults is not None:
        routes += [Route(FAULTS_PATH, endpoint(list_faults), methods=["GET"]),
                   Route(FAULTS_PATH, endpoint(add_faults), methods=["POST"]),
                   Route(FAULTS_PATH, endpoint(clear_faults), methods=["DELETE"])]

    async def not_routed(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        if status != 405:
            return error_response(status, f"no such endpoint: {request.method} {request.url.path}")
        # Each method of a path is its own route: Starlette's Allow names only the first one's.
        allowed = sorted({m for r in routes if r.matches(request.scope)[0] is not Match.NONE
                          for m in (r.methods or ())})
        return error_response(405, f"method not allowed for {request.method} {request.url.path} "
                                   f"(allowed: {', '.join(allowed)})", headers={"Allow": ", ".join(allowed)})

    app = Starlette(routes=routes, exception_handlers={404: not_routed, 405: not_routed})
    return Front(app, log=log, faults=faults)


def limits(model_name: str) -> dict[str, Any]:
    """``GET /v1/fine-tunes/models/limits``: what the vendor SDK reads before a create."""
    from ftctl.backends.simulator.backend import LIMITS
    from ftctl.backends.simulator.catalogue import limits as of_model

    return of_model(model_name, max_epochs=LIMITS["n_epochs"], max_evals=LIMITS["n_evals"],
                    max_checkpoints=LIMITS["n_checkpoints"])


async def _json_body(request: Request, *, allow_list: bool = False) -> Any:
    chunks, size = [], 0
    async for chunk in request.stream():  # counted as it arrives: a huge body is refused, not buffered
        size += len(chunk)
        if size > MAX_BODY:
            raise BodyTooLarge(f"of {request.method} {request.url.path} is too large")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError):
        raise InvalidInput(f"the request body of {request.method} {request.url.path} is not valid JSON") from None
    if not isinstance(data, dict) and not (allow_list and isinstance(data, list)):
        raise InvalidInput(f"the request body of {request.method} {request.url.path} must be a JSON object")
    return data


def _header_scenario(request: Request) -> Scenario | None:
    """A preset name or an inline JSON scenario; never a file path (the client is not the host)."""
    value = request.headers.get(SCENARIO_HEADER, "").strip()
    if not value:
        return None
    if value.startswith("{"):
        try:
            data = json.loads(value)
        except ValueError:
            raise InvalidInput(f"the {SCENARIO_HEADER} header is not valid JSON") from None
        return scenarios.from_data(data, name=f"from the {SCENARIO_HEADER} header")
    if value not in scenarios.PRESETS:
        raise InvalidInput(f"unknown scenario {value!r} in the {SCENARIO_HEADER} header: a preset "
                           f"({', '.join(scenarios.PRESETS)}) or a JSON object {{\"eval_loss\": [...]}}")
    return scenarios.Scenario(name=value, preset=value)


def byte_range(header: str | None, total: int) -> tuple[int, int] | None | bool:
    """``Range: bytes=a-b`` / ``a-`` / ``-n`` as ``(start, end)``, end exclusive; None to send the
    whole archive (no header, or one this server does not take, such as several ranges); False
    when the range lies outside the archive (416)."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header or "")
    if not match or not (match[1] or match[2]):
        return None
    if not match[1]:  # the last n bytes
        n = int(match[2])
        return (max(0, total - n), total) if n else False
    first = int(match[1])
    last = int(match[2]) if match[2] else None
    if last is not None and last < first:
        return None  # not a valid range: ignored (RFC 9110 §14.1.1)
    if first >= total:
        return False
    last = total - 1 if last is None else last
    return first, min(last, total - 1) + 1


def _int_param(query: Any, name: str, *, minimum: int = 0) -> int | None:
    text = query.get(name)
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise InvalidInput(f"{name} must be a whole number >= {minimum} (got {text!r})")
    return value


# -- around the routes: bearer token, faults, access log --------------------------------------------


class Front:
    """ASGI middleware: every request needs a bearer token (any non-empty one); a queued fault may
    answer instead of the simulator; one line per request goes to the log (never a header)."""

    def __init__(self, app: Any, *, log: Log, faults: Faults | None) -> None:
        self.app, self.log, self.faults = app, log, faults

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 0

        async def tracked(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        method, path = scope["method"], scope["path"]
        fault: Fault | None = None
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        try:
            # the signed upload URLs stand for S3's presigned ones: no bearer token is sent there
            if not path.startswith("/_sim/uploads/") and not _bearer(headers.get("authorization", "")):
                await error_response(
                    401, "missing or malformed Authorization header: send 'Authorization: Bearer <token>' "
                         "(the simulator accepts any non-empty token)",
                    type_="authentication_error", code="invalid_api_key")(scope, receive, tracked)
                return
            declared, limit = headers.get("content-length", ""), body_limit(path)
            if declared.isdigit() and int(declared) > limit:
                await _too_large(f"of {method} {path} is too large (Content-Length {declared})", limit)(
                    scope, receive, tracked)
                return
            if self.faults is not None and path.startswith("/v1/"):
                fault = self.faults.take(method, path)
            if fault is None:
                await self.app(scope, receive, tracked)
            else:
                await self._fault(fault, scope, receive, tracked)
        finally:
            query = scope.get("query_string", b"").decode("latin-1")
            client = scope.get("client") or ("-", 0)
            retry = headers.get("x-ftctl-retry-count") or headers.get("x-stainless-retry-count") or "0"
            notes = ([f"retry {retry}"] if retry not in ("0", "") else []) + \
                    ([f"fault {fault.kind}" + (f" {fault.http_status}" if fault.kind != "slow" else
                                               f" {fault.delay:g}s")] if fault else [])
            self.log(f"{client[0]} {method} {path}{'?' + query if query else ''} {status} "
                     f"{(time.monotonic() - started) * 1000:.0f} ms" + (f" ({', '.join(notes)})" if notes else ""))

    async def _fault(self, fault: Fault, scope: dict[str, Any], receive: Any, send: Any) -> None:
        status = fault.http_status
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            await self.app(scope, receive, send)
            return
        if fault.kind in ("truncated", "dropped"):
            await self._truncated(scope, receive, send, drop=fault.kind == "dropped")
            return
        if fault.kind == "status":
            headers = {k: v for k, v in (("Retry-After", fault.retry_after),
                                         ("retry-after-ms", fault.retry_after_ms)) if v is not None}
            response = error_response(status, fault.message or f"simulated fault: HTTP {status}",
                                      type_="server_error" if status >= 500 else
                                      "rate_limit_error" if status == 429 else "invalid_request_error",
                                      headers=headers)
        elif fault.kind == "html":
            title = fault.message or f"{status} Bad Gateway"
            response = Response(f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1>"
                                "</center><hr><center>nginx</center></body></html>",
                                status_code=status, media_type="text/html")
        elif fault.kind == "malformed":
            response = Response('{"id": "ft-malformed", "status": running, oops', status_code=status,
                                media_type="application/json")
        else:  # empty
            response = Response(b"", status_code=status, media_type="application/json")
        await response(scope, receive, send)

    async def _truncated(self, scope: dict[str, Any], receive: Any, send: Any, *, drop: bool = False) -> None:
        """The real answer, its body cut in half: Content-Length says the shorter length, or (``drop``)
        the full one, and the connection closes after the half."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        cut = body[: len(body) // 2]
        start["headers"] = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"] + \
                           [(b"content-length", str(len(body if drop else cut)).encode())]
        await send(start)
        # Returning with the body unfinished makes the ASGI server close the connection.
        await send({"type": "http.response.body", "body": cut, "more_body": drop})


def _bearer(value: str) -> bool:
    scheme, _, token = value.partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


# -- running it -----------------------------------------------------------------------------------


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, so the URL (and with port 0 the real port) is known before serving."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise InvalidInput(f"cannot listen on host {host!r}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ApiError(f"cannot listen on {host}:{port}: {exc.strerror or exc}"
                       + (" (choose another --port, or --port 0 for a free one)"
                          if exc.errno in (98, 48, 10048) else "")) from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _raw_error(status: int, reason: str, message: str, type_: str, code: str) -> bytes:
    """A whole error answer as bytes, for the connection layer (where no request may exist yet)."""
    body = dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
            f"\r\nconnection: close\r\n\r\n").encode() + body


def guarded_protocol(*, request_timeout: float, log: Log) -> type:
    """uvicorn's h11 protocol with what it lacks against slow or hostile clients: a deadline for the
    whole request (uvicorn only times out idle keep-alive connections, so a client sending half a
    request would hold its connection forever), a cap on open connections, and the API's error
    envelope instead of a plain-text 400 for bytes that are not HTTP."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    finished = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)

    class Guarded(H11Protocol):
        deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > MAX_CONNECTIONS:
                self._answer_and_close(_raw_error(
                    503, "Service Unavailable", f"the simulator has {MAX_CONNECTIONS} connections open; "
                    "retry later", "server_error", "too_many_connections"))
                return
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state in finished:  # the whole request is in: the app may take its time
                self._disarm()

        def on_response_complete(self) -> None:
            if not self.transport.is_closing():
                self._arm()  # the next request on this connection gets the same deadline
            super().on_response_complete()

        def send_400_response(self, msg: str) -> None:
            self._answer_and_close(_raw_error(400, "Bad Request", "the request is not valid HTTP/1.1",
                                              "invalid_request_error", "bad_request"))

        def _arm(self) -> None:
            self._disarm()
            self.deadline = self.loop.call_later(request_timeout, self._expired)

        def _disarm(self) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None

        def _expired(self) -> None:
            self.deadline = None
            if self.transport.is_closing():
                return
            begun = self.conn.their_state is not h11.IDLE or bool(self.conn.trailing_data[0])
            if not begun:  # an idle keep-alive connection: just close it
                self.transport.close()
                return
            client = self.client[0] if self.client else "-"
            log(f"{client} dropped: the request was not complete within {request_timeout:g} s")
            answered = self.cycle is not None and self.cycle.response_started
            self._answer_and_close(None if answered else _raw_error(
                408, "Request Timeout", f"the request was not complete within {request_timeout:g} s",
                "invalid_request_error", "request_timeout"))

        def _answer_and_close(self, data: bytes | None) -> None:
            self._disarm()
            if data is not None:
                self.transport.write(data)
            if self.cycle is not None:
                self.cycle.keep_alive = False
            self.transport.close()

    return Guarded


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def hold_stop_signals() -> None:
    """Hold Ctrl-C and SIGTERM until the server has its own handlers (``run`` lets them through):
    a stop asked for right after the ready line then stops the server cleanly, instead of landing
    in the moment before it starts, where it killed the process without a word."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def _release_stop_signals() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def run(app: Any, sock: socket.socket, *, request_timeout: float = REQUEST_TIMEOUT,
        log: Log = lambda line: None) -> int:
    """Serve until Ctrl-C or SIGTERM; finish in-flight requests; return the signal that stopped it."""
    import uvicorn

    class Server(uvicorn.Server):
        stopped_by = 0

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            _release_stop_signals()  # our handlers are in place: a stop held since the ready line arrives now

        def handle_exit(self, sig: int, frame: Any) -> None:
            # uvicorn re-raises the signal after shutting down; record it instead, so that a
            # requested stop is a clean exit rather than a KeyboardInterrupt or a kill.
            self.stopped_by = self.stopped_by or sig
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN, server_header=False,
                            http=guarded_protocol(request_timeout=request_timeout, log=log),
                            timeout_keep_alive=min(5.0, request_timeout))
    server = Server(config)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
    finally:
        _release_stop_signals()
    return server.stopped_by
