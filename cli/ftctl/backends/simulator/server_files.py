"""``/v1/files`` of ``ftctl sim serve``, exchange for exchange as ``together==3.1.1`` performs them
(``docs/api.md`` §6), so that the vendor's SDK and ``tg``
upload, dedup, list, retrieve, delete and download against the simulator as against the API:

    POST /v1/files (form fields)     -> 302, Location: presigned PUT URL, X-Together-File-Id
                                        409 {"file_id"} when the same bytes are already there
    PUT  <Location> (no Authorization) -> 200
    POST /v1/files/{id}/preprocess   -> the file object
    POST /v1/files/multipart/{initiate,complete,abort}, PUT <part URL> -> 200 + ETag

The "presigned" URLs live under ``/_sim/uploads/`` on this server and carry a per-upload signature
instead of the bearer token, as S3's do (the SDK sends no Authorization there).
"""

from __future__ import annotations

import email.parser
import email.policy
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from ftctl.backends.simulator.files import file_chunks
from ftctl.errors import InvalidInput

if TYPE_CHECKING:
    from ftctl.backends.simulator.backend import Simulator

UPLOADS = "/_sim/uploads/"  # the unauthenticated, signed upload URLs (the bearer check skips them)
# What one PUT to a signed URL may carry, as S3's presigned PUT: 5 GiB (the vendor's client goes
# multipart above that, ``together_files.MULTIPART_THRESHOLD``), spooled to disk as it arrives.
MAX_UPLOAD = 5 * 2**30
MAX_PARTS = 250


def routes(simulator: Simulator, endpoint: Callable, json_response: Callable) -> list[Route]:
    files = simulator.files

    async def upload(request: Request) -> Response:
        from ftctl.backends.simulator.files import FileExists

        form = await _form(request)
        try:
            row = files.begin(filename=form.get("file_name", ""), purpose=form.get("purpose", ""),
                              file_type=form.get("file_type", "jsonl"), checksum=form.get("checksum", ""))
        except FileExists as exc:
            return _exists(exc.file_id, json_response)
        return Response(status_code=302, headers={
            "Location": _upload_url(request, row["id"], row["token"]), "X-Together-File-Id": row["id"]})

    async def put_content(request: Request) -> Response:
        file_id, token = request.path_params["file_id"], request.query_params.get("signature", "")
        files.check_upload(file_id, token)
        spooled = await _spool(request, files.spool_path())
        try:
            files.receive(file_id, token, file_chunks(spooled))
        finally:
            spooled.unlink(missing_ok=True)
        return Response(status_code=200)

    async def preprocess(request: Request) -> Response:
        return json_response(files.preprocess(request.path_params["file_id"]))

    async def initiate(request: Request) -> Response:
        from ftctl.backends.simulator.files import FileExists

        body = await _json(request)
        num_parts = body.get("num_parts")
        if isinstance(num_parts, bool) or not isinstance(num_parts, int) or not 1 <= num_parts <= MAX_PARTS:
            raise InvalidInput(f"num_parts must be a whole number from 1 to {MAX_PARTS} (got {num_parts!r})")
        try:
            row = files.begin(filename=str(body.get("file_name") or ""), purpose=str(body.get("purpose") or ""),
                              file_type=str(body.get("file_type") or "jsonl"),
                              checksum=str(body.get("checksum") or ""), multipart=True)
        except FileExists as exc:
            return _exists(exc.file_id, json_response)
        base = _upload_url(request, row["id"], row["token"], part=True)
        return json_response({"upload_id": row["upload_id"], "file_id": row["id"], "parts": [
            {"PartNumber": n, "URL": base.replace("{n}", str(n)), "Headers": {}} for n in range(1, num_parts + 1)]})

    async def put_part(request: Request) -> Response:
        file_id, token = request.path_params["file_id"], request.query_params.get("signature", "")
        files.check_upload(file_id, token)
        spooled = await _spool(request, files.spool_path())
        try:
            etag = files.receive_part(file_id, token, request.path_params["number"], file_chunks(spooled))
        finally:
            spooled.unlink(missing_ok=True)
        return Response(status_code=200, headers={"ETag": f'"{etag}"'})

    async def complete(request: Request) -> Response:
        body = await _json(request)
        parts = body.get("parts")
        if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
            raise InvalidInput("parts must be a list of {part_number, etag}")
        return json_response(files.complete(str(body.get("file_id") or ""), str(body.get("upload_id") or ""),
                                            parts))

    async def abort(request: Request) -> Response:
        body = await _json(request)
        files.abort(str(body.get("file_id") or ""), str(body.get("upload_id") or ""))
        return json_response({"upload_id": body.get("upload_id"), "file_id": body.get("file_id"), "aborted": True})

    async def list_files(request: Request) -> Response:
        return json_response({"object": "list", "data": files.list()})

    async def retrieve(request: Request) -> Response:
        return json_response(files.retrieve(request.path_params["file_id"]))

    async def delete(request: Request) -> Response:
        return json_response(files.delete(request.path_params["file_id"]))

    async def content(request: Request) -> Response:
        file_id = request.path_params["file_id"]
        return FileResponse(files.content(file_id), media_type="application/octet-stream")

    return [
        Route("/v1/files", endpoint(list_files), methods=["GET"]),
        Route("/v1/files", endpoint(upload), methods=["POST"]),
        Route("/v1/files/multipart/initiate", endpoint(initiate), methods=["POST"]),
        Route("/v1/files/multipart/complete", endpoint(complete), methods=["POST"]),
        Route("/v1/files/multipart/abort", endpoint(abort), methods=["POST"]),
        Route("/v1/files/{file_id}", endpoint(retrieve), methods=["GET"]),
        Route("/v1/files/{file_id}", endpoint(delete), methods=["DELETE"]),
        Route("/v1/files/{file_id}/content", endpoint(content), methods=["GET"]),
        Route("/v1/files/{file_id}/preprocess", endpoint(preprocess), methods=["POST"]),
        Route(UPLOADS + "{file_id}", endpoint(put_content), methods=["PUT"]),
        Route(UPLOADS + "{file_id}/parts/{number:int}", endpoint(put_part), methods=["PUT"]),
    ]


def estimate_unavailable(simulator: Simulator, body: dict[str, Any]) -> dict[str, Any] | None:
    """The estimate's answer while a file is not validated yet or was found invalid (the reasons
    the SDK and ``tg`` word, ``docs/api.md`` §5); None when both files are usable or unknown here."""
    from ftctl.errors import NotFound

    for key, short in (("training_file", "train"), ("validation_file", "eval")):
        if not body.get(key):
            continue
        try:
            status = simulator.files.retrieve(str(body[key])).get("processing_status")
        except NotFound:
            continue  # the create that follows names it
        if status in ("INVALID_FORMAT", "FAILED"):
            return {"estimation_available": False, "unavailable_reason": f"{short}_file_invalid"}
        if status not in (None, "COMPLETED"):
            return {"estimation_available": False, "unavailable_reason": f"{short}_file_not_validated"}
    return None


def _exists(file_id: str, json_response: Callable) -> Response:
    # The SDK reads the top-level file_id; x-should-retry spares it three retries of a 409.
    return json_response({"file_id": file_id, "error": {
        "message": f"File already exists under ID: {file_id}", "type": "invalid_request_error",
        "param": "checksum", "code": "file_exists"}}, 409, {"x-should-retry": "false"})


def _upload_url(request: Request, file_id: str, token: str, *, part: bool = False) -> str:
    """Absolute, on the host the client reached (it must be able to PUT there)."""
    base = str(request.base_url).rstrip("/")
    path = f"{UPLOADS}{quote(file_id)}" + ("/parts/{n}" if part else "")
    return f"{base}{path}?signature={quote(token)}"


async def _spool(request: Request, path: Path) -> Path:
    """The request body into a private temporary file: memory stays flat whatever the size."""
    size = 0
    try:
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            async for chunk in request.stream():  # counted as it arrives: a chunked body has no length
                size += len(chunk)
                if size > MAX_UPLOAD:
                    from ftctl.backends.simulator.server import BodyTooLarge

                    too_large = BodyTooLarge(f"of {request.method} {request.url.path} is too large")
                    too_large.limit = MAX_UPLOAD
                    raise too_large
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


async def _form(request: Request) -> dict[str, str]:
    """The upload's form fields (multipart or urlencoded), without a multipart dependency: the
    SDK sends fields only, never a file part."""
    raw = await request.body()
    kind = request.headers.get("content-type", "")
    if kind.startswith("application/x-www-form-urlencoded"):
        return {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    if not kind.startswith("multipart/form-data"):
        raise InvalidInput("POST /v1/files takes form fields purpose, file_name, file_type and checksum "
                           f"(multipart/form-data), not {kind or 'no content type'}")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + kind.encode("latin-1") + b"\r\n\r\n" + raw)
    fields: dict[str, str] = {}
    for part in message.iter_parts() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = part.get_payload(decode=True).decode("utf-8", "replace")
    return fields


async def _json(request: Request) -> dict[str, Any]:
    import json

    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise InvalidInput(f"the request body of {request.method} {request.url.path} is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"the request body of {request.method} {request.url.path} must be a JSON object")
    return data
