"""Exit codes and the errors that carry them: the one place that maps a failure to a code.

The table is the contract of ``docs/contract.md`` ("Exit codes"); ``ftctl --help`` and the README
list it from ``EXIT_CODES`` below. Every error ftctl raises on purpose is an ``FtctlError``: the
entry point prints its one-line message (or a JSON object under ``--json``) and exits with its code.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    TIMEOUT = 3
    AUTH = 4
    JOB_FAILED = 5
    NOT_FOUND = 6
    HANGUP = 129
    INTERRUPTED = 130
    BROKEN_PIPE = 141
    TERMINATED = 143


EXIT_CODES: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.ERROR: "API, server or network error (after retries), or a price estimate that does not "
                    "allow the job (create; nothing is created)",
    ExitCode.USAGE: "invalid usage or input; nothing was sent",
    ExitCode.TIMEOUT: "wait / --wait timed out, or download found the job not ended; the job is still running",
    ExitCode.AUTH: "authentication missing or rejected (401/403)",
    ExitCode.JOB_FAILED: "the job ended unsuccessfully (error, user_error, cancelled) under wait / --wait, "
                         "or has no model to download",
    ExitCode.NOT_FOUND: "not found (unknown job id, or no checkpoint at that step)",
    ExitCode.HANGUP: "the terminal hung up (SIGHUP); as for 130",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C); a job being waited on is not cancelled",
    ExitCode.BROKEN_PIPE: "broken pipe: stdout's reader went away (e.g. head); the rest is dropped quietly",
    ExitCode.TERMINATED: "terminated (SIGTERM); as for 130",
}


class FtctlError(Exception):
    """A failure meant for the user: one line of message, an exit code, a stable error code."""

    exit_code: ExitCode = ExitCode.ERROR
    code: str = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class InvalidInput(FtctlError):
    """Bad input caught before anything was sent."""

    exit_code = ExitCode.USAGE
    code = "invalid_input"


class ApiError(FtctlError):
    """The API, the simulator's store or the network failed (after retries)."""

    exit_code = ExitCode.ERROR
    code = "api_error"


class DownloadInterrupted(ApiError):
    """A download's byte stream broke before its end (the bytes received so far are kept)."""

    code = "download_interrupted"


class AuthError(FtctlError):
    exit_code = ExitCode.AUTH
    code = "auth_error"


class NotFound(FtctlError):
    exit_code = ExitCode.NOT_FOUND
    code = "not_found"


class WaitTimeout(FtctlError):
    exit_code = ExitCode.TIMEOUT
    code = "timeout"


class NotReady(FtctlError):
    """The job has not ended yet (``download`` of a running job): exit 3, like a wait that ran out."""

    exit_code = ExitCode.TIMEOUT
    code = "not_ready"


class OutputError(FtctlError):
    """stdout cannot take the output (closed, a full disk, an I/O error): the data is incomplete."""

    exit_code = ExitCode.ERROR
    code = "output_error"


class BrokenPipe(OutputError):
    """stdout's reader went away: not an error to report, the output simply stops (exit 141).
    Not an ``OSError``, so that nothing on the way up (Click) handles it its own way."""

    exit_code = ExitCode.BROKEN_PIPE
    code = "broken_pipe"


class Signalled(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl-C so that the same clean-up runs (the live view puts the
    cursor back); the process then exits 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum


class ResponseError(ApiError):
    """A response that is not the shape the API documents (``ftctl.models``, ``ftctl.shapes``)."""

    code = "bad_response"


class JobFailed(FtctlError):
    exit_code = ExitCode.JOB_FAILED
    code = "job_failed"
