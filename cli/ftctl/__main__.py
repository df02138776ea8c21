"""The entry point: runs the command tree and turns every failure into one line and an exit code.

No traceback reaches the user unless ``--debug`` is given (``docs/contract.md``). Everything printed
here, the traceback included, goes through ``ftctl.redact`` first: no key, authorization value or
URL credential leaves, whatever a server or a library put into an exception's text.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftctl.environment import Environment
    from ftctl.errors import FtctlError


def main() -> None:
    """The process: its streams and signals first (``ftctl.output.terminal.prepare_streams``), then
    the command, then stdout flushed here, where a failure can still be reported and change the code."""
    from ftctl.output.terminal import prepare_streams

    prepare_streams()
    _catch_signals()
    argv = sys.argv[1:]
    code = run(argv)
    sys.exit(_flush_stdout(code, _json_errors(argv)))


def _catch_signals() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C (``Signalled``), so the live view restores the terminal
    and the exit code is 128 + the signal's number."""
    import signal

    def raise_signalled(signum: int, frame: object) -> None:
        from ftctl.errors import Signalled

        raise Signalled(signum)

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), raise_signalled)


def _json_errors(argv: list[str]) -> bool:
    return any(a == "--json" or a == "--fields" or a.startswith("--fields=") for a in argv)


def _flush_stdout(code: int, json_errors: bool) -> int:
    from ftctl.errors import ExitCode, OutputError

    try:
        sys.stdout.flush()
    except OutputError as exc:
        _silence_stdout()
        if code != 0:
            return code
        return int(ExitCode.BROKEN_PIPE) if exc.code == "broken_pipe" else _report(exc, json_errors)
    return code


def run(argv: list[str], environment: Environment | None = None) -> int:
    """Run one command; ``environment`` (clock, streams, terminal) defaults to the real process's."""
    try:
        return _run(argv, environment)
    except Exception as exc:  # stdout failing outside the command (--version, a TAB completion)
        from ftctl.errors import OutputError

        if not isinstance(exc, OutputError):
            raise
        _silence_stdout()
        return int(exc.exit_code) if exc.code == "broken_pipe" else _report(exc, _json_errors(argv))


def _run(argv: list[str], environment: Environment | None) -> int:
    if argv in (["--version"], ["-V"]):  # the cheapest path: no Typer, nothing else
        from ftctl import __version__

        sys.stdout.write(f"ftctl {__version__}\n")
        return 0
    if os.environ.get("_FTCTL_COMPLETE", "").startswith("complete_"):  # a TAB: answer ids without Typer
        from ftctl.commands.completers import quick_answer

        answer = quick_answer(os.environ)
        if answer is not None:
            sys.stdout.write(answer[0])
            return answer[1]
    from ftctl import help_cache

    if help_cache.applies(argv):
        return _help(argv, environment)
    return _run_tree(argv, environment)


def _help(argv: list[str], environment: Environment | None) -> int:
    """``--help`` from the cache (``ftctl.help_cache``), or drawn, recorded and cached."""
    from ftctl import help_cache

    key = help_cache.key(argv, sys.stdout)
    text = help_cache.read(key)
    if text is not None:
        sys.stdout.write(text)
        return 0
    recorder = help_cache.Recorder(sys.stdout)
    sys.stdout = recorder  # type: ignore[assignment]
    try:
        code = _run_tree(argv, environment)
    finally:
        sys.stdout = recorder.real
    if code == 0:
        help_cache.save(key, recorder.text())
    return code


def _run_tree(argv: list[str], environment: Environment | None) -> int:
    """The command: a quick read (``ftctl.commands.quick``) or the Typer tree; any failure of
    either becomes one line and its exit code (``_failure``)."""
    try:
        from ftctl.commands import quick

        code = quick.answer(argv, environment)
        return _typer_tree(argv, environment) if code is None else code
    except (Exception, KeyboardInterrupt) as exc:
        return _failure(exc, argv)


def _typer_tree(argv: list[str], environment: Environment | None) -> int:
    import typer

    from ftctl.app import app

    command = typer.main.get_command(app)
    result = command.main(args=argv, prog_name="ftctl", standalone_mode=False,
                          obj={"environment": environment} if environment is not None else None)
    return result if isinstance(result, int) else 0


def _failure(exc: BaseException, argv: list[str]) -> int:
    """One line for ``exc`` (a traceback too with ``--debug``, for an ftctl error or a bug), and
    the exit code. Click's exceptions can only come from the tree, so Typer is imported only then."""
    from ftctl.errors import ApiError, ExitCode, FtctlError, InvalidInput

    debug = "--debug" in argv
    json_errors = _json_errors(argv)
    color = _option(argv, "--color") or "auto"
    click = _click_exceptions() if "typer" in sys.modules else None
    if click is not None and isinstance(exc, click.NoArgsIsHelpError):
        # `ftctl` or `ftctl sim` alone: the help is the answer (Typer has printed it already), exit 2
        # as for any incomplete command line, and no "Error:" line with nothing after it
        if exc.format_message().strip():
            sys.stdout.write(exc.format_message().rstrip("\n") + "\n")
        return int(ExitCode.USAGE)
    if click is not None and isinstance(exc, click.UsageError):
        where = f" (see 'ftctl{_subcommand(exc)} --help')"
        return _report(InvalidInput(exc.format_message() + where), json_errors, color)
    if isinstance(exc, FtctlError):
        if exc.code in ("output_error", "broken_pipe"):
            _silence_stdout()
            if exc.code == "broken_pipe":  # the reader of stdout went away: stop quietly (README, "Exit codes")
                return int(exc.exit_code)
        if debug:
            _print_traceback(exc)
        return _report(exc, json_errors, color)
    if isinstance(exc, KeyboardInterrupt) or (click is not None and isinstance(exc, click.Abort)):
        from ftctl.errors import Signalled

        signalled = exc if isinstance(exc, Signalled) else exc.__context__  # Click turns it into Abort
        if isinstance(signalled, Signalled):
            import signal

            sys.stderr.write(f"\nTerminated ({signal.Signals(signalled.signum).name}).\n")
            return signalled.exit_code
        sys.stderr.write("\nInterrupted.\n")
        return int(ExitCode.INTERRUPTED)
    if click is not None and isinstance(exc, click.ClickException):
        return _report(InvalidInput(exc.format_message()), json_errors, color)
    if isinstance(exc, BrokenPipeError):  # the reader of stdout went away: stop quietly (README, "Exit codes")
        _silence_stdout()
        return int(ExitCode.BROKEN_PIPE)
    # a bug: say so in one line, the traceback only with --debug
    if debug:
        _print_traceback(exc)
    return _report(ApiError(f"internal error: {type(exc).__name__}: {exc} "
                            "(run again with --debug for the traceback)"), json_errors, color)


def _click_exceptions() -> Any:
    """Click's exception classes, as Typer vendors them."""
    from types import SimpleNamespace

    from typer import Abort
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    return SimpleNamespace(Abort=Abort, ClickException=ClickException, NoArgsIsHelpError=NoArgsIsHelpError,
                           UsageError=UsageError)


def _subcommand(exc: object) -> str:
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", "") or ""
    return path[len("ftctl"):] if path.startswith("ftctl") else ""


def _option(argv: list[str], name: str) -> str | None:
    """The value of ``name VALUE`` or ``name=VALUE`` in ``argv`` (the last one wins), before parsing."""
    value = None
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(name + "="):
            value = arg[len(name) + 1:]
    return value


def _report(exc: FtctlError, json_errors: bool, color: str = "auto") -> int:
    from ftctl.redact import redact

    if json_errors:
        from ftctl.wire import dumps

        sys.stderr.write(dumps({"error": {"code": exc.code, "message": redact(exc.message),
                                          "exit_code": int(exc.exit_code)}}) + "\n")
    else:
        from ftctl.output.terminal import COLOR_CHOICES, Terminal

        term = Terminal(color=color if color in COLOR_CHOICES else "auto")
        term.error(redact(exc.message + (f" ({exc.hint})" if exc.hint else "")))
    return int(exc.exit_code)


def _print_traceback(exc: BaseException) -> None:
    import traceback

    from ftctl.redact import redact

    sys.stderr.write(redact("".join(traceback.format_exception(exc))))
    sys.stderr.flush()


def _silence_stdout() -> None:
    from ftctl.output.terminal import silence

    silence(sys.stdout)


if __name__ == "__main__":
    main()
