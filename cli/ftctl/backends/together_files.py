"""``/v1/files`` over httpx, as ``together==3.1.1`` speaks it (``docs/api.md`` §6): the upload is
POST (form fields, no bytes) -> 302 to a presigned URL -> PUT of the bytes -> POST .../preprocess;
a 409 names the identical file already uploaded; files over 5 GiB go in parts (initiate, PUT each
part, complete; abort on any failure).

The presigned URLs belong to a storage host, not to Together: the PUTs go through a bare client
that carries no Authorization header (the SDK's own rule), so the key never leaves for a third party.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator

from ftctl.errors import ApiError

if TYPE_CHECKING:
    from ftctl.backend import Upload
    from ftctl.wire import Wire

MULTIPART_THRESHOLD = 5 * 2**30  # bytes; strictly greater goes multipart (the SDK's MULTIPART_THRESHOLD_GB)
TARGET_PART = 250 * 2**20
MIN_PART = 5 * 2**20
MAX_PARTS = 250
CHUNK = 1 << 20
PUT_TIMEOUT = 300.0


def part_plan(size: int) -> tuple[int, int]:
    """(number of parts, part size), as the SDK's ``_calculate_parts``."""
    if size <= TARGET_PART:
        return 1, size
    parts = min(MAX_PARTS, math.ceil(size / TARGET_PART))
    part = math.ceil(size / parts)
    if part < MIN_PART:
        part = MIN_PART
        parts = math.ceil(size / MIN_PART)
    return parts, part


class FileOps:
    """Mixed into ``TogetherBackend``: uses its ``_request``, ``_client`` and error rules."""

    def upload_file(self, path: Path, *, purpose: str = "fine-tune", upload: Upload | None = None) -> tuple[Wire, bool]:
        from ftctl.backend import Upload
        from ftctl.backends.uploads import checksum_of, file_type_of

        upload = upload or Upload(total=path.stat().st_size)
        kind = file_type_of(path.name)
        upload.stage = "hashing"
        checksum = checksum_of(path)
        size = path.stat().st_size
        if size > MULTIPART_THRESHOLD:
            return self._multipart(path, purpose, kind, checksum, size, upload)
        upload.stage = "registering"
        response = self._request("POST", "/v1/files", form={
            "purpose": purpose, "file_name": path.name, "file_type": kind, "checksum": checksum},
            idempotent=False, accept=frozenset({302, 409}))
        if response.status_code == 409:
            return self._existing(response), True
        file_id = response.headers.get("x-together-file-id", "")
        location = response.headers.get("location", "")
        if not file_id or not location.startswith(("http://", "https://")):
            raise ApiError("the API's answer to POST /v1/files had no upload URL or file id "
                           "(Location / X-Together-File-Id headers)")
        upload.file_id, upload.stage = file_id, "sending"
        with open(path, "rb") as f:
            self._put(location, _read(f, size, upload), size, {})
        upload.stage = "processing"
        file = self._file(self._request("POST", f"/v1/files/{file_id}/preprocess", idempotent=False), file_id)
        upload.stage = "done"
        return file, False

    def list_files(self) -> list[Wire]:
        from ftctl.models import File, parse_list, unwrap_list

        data = self._request("GET", "/v1/files")
        parse_list(File, data, "data", "the file list")
        return unwrap_list(data, "data", "the file list")

    def retrieve_file(self, file_id: str) -> Wire:
        return self._file(self._request("GET", f"/v1/files/{file_id}"), file_id)

    def delete_file(self, file_id: str) -> Wire:
        data = self._request("DELETE", f"/v1/files/{file_id}", idempotent=False)
        return data if isinstance(data, dict) else {"id": file_id, "deleted": True}

    def file_content(self, file_id: str, out: BinaryIO) -> int:
        path = f"/v1/files/{file_id}/content"
        with self._client.stream("GET", path, headers={"Accept": "application/binary"}) as response:
            if not response.is_success:
                response.read()
                raise self._failure(response, "GET", path, 1)
            written = 0
            for chunk in response.iter_bytes(CHUNK):
                out.write(chunk)
                written += len(chunk)
            return written

    # -- inside -----------------------------------------------------------------------------------

    def _existing(self, response: Any) -> Wire:
        try:
            file_id = response.json()["file_id"]
        except (ValueError, KeyError, TypeError):
            raise ApiError("the API answered 409 (file already exists) without naming the file") from None
        return self.retrieve_file(str(file_id))

    @staticmethod
    def _file(data: Any, what: str) -> Wire:
        from ftctl.models import File, parse

        parse(File, data, f"file {what}")
        return data

    def _put(self, url: str, body: Iterator[bytes], size: int, headers: dict[str, str]) -> Any:
        """A PUT to a presigned URL: a bare client, so no Authorization header goes to storage."""
        import httpx

        with httpx.Client(timeout=httpx.Timeout(PUT_TIMEOUT, connect=self.settings.connect_timeout),
                          follow_redirects=False, transport=getattr(self, "_transport", None)) as bare:
            response = bare.put(url, content=body, headers={**headers, "Content-Length": str(size)})
        if response.status_code != 200:
            raise ApiError(f"the upload of the file's bytes failed: HTTP {response.status_code} from the "
                           f"storage host {httpx.URL(url).host} ({_start(response.text)})")
        return response

    def _multipart(self, path: Path, purpose: str, kind: str, checksum: str, size: int, upload: Upload) -> tuple[Wire, bool]:
        parts, part_size = part_plan(size)
        upload.stage = "registering"
        response = self._request("POST", "/v1/files/multipart/initiate", body={
            "file_name": path.name, "file_size": size, "num_parts": parts, "purpose": purpose,
            "file_type": kind, "checksum": checksum}, idempotent=False, accept=frozenset({409}))
        if getattr(response, "status_code", None) == 409:
            return self._existing(response), True
        upload_id, file_id = response.get("upload_id"), response.get("file_id")
        upload.file_id, upload.stage = file_id, "sending"
        try:
            etags = []
            with open(path, "rb") as f:
                for n, part in enumerate(sorted(response.get("parts") or [], key=_part_number), 1):
                    url = part.get("URL") or part.get("UploadURL")
                    length = min(part_size, size - (n - 1) * part_size)
                    f.seek((n - 1) * part_size)
                    sent = self._put(url, _read(f, length, upload), length, part.get("Headers") or {})
                    etag = sent.headers.get("etag", "").strip('"')
                    if not etag:
                        raise ApiError(f"the storage host returned no ETag for part {n}")
                    etags.append({"part_number": n, "etag": etag})
            upload.stage = "processing"
            done = self._request("POST", "/v1/files/multipart/complete",
                                 body={"upload_id": upload_id, "file_id": file_id, "parts": etags}, idempotent=False)
        except BaseException:
            upload.stage = "aborting"
            try:
                self._request("POST", "/v1/files/multipart/abort", body={"upload_id": upload_id, "file_id": file_id})
                upload.stage = "aborted"
            except Exception:
                pass
            raise
        upload.stage = "done"
        return self._file(done.get("file", done) if isinstance(done, dict) else done, file_id), False


def _part_number(part: dict[str, Any]) -> int:
    return int(part.get("PartNumber") or part.get("part_number") or 0)


def _read(f: BinaryIO, length: int, upload: Upload) -> Iterator[bytes]:
    left = length
    while left > 0:
        chunk = f.read(min(CHUNK, left))
        if not chunk:
            break
        left -= len(chunk)
        upload.advance(len(chunk))
        yield chunk


def _start(text: str) -> str:
    words = " ".join(text.split())
    return repr(words[:80]) if words else "empty body"
