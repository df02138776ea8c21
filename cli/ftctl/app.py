"""The command tree. Importing this module builds the Typer app and nothing else: command bodies
import what they need when they run, so ``--help`` and completion stay fast."""

import inspect
from typing import Annotated

import typer

from ftctl import __version__
from ftctl.commands import (checkpoints, compare, completers, completion, create, download, events, explain,
                            files, jobs, metrics, report, sim, wait)
from ftctl.commands.common import ROOT_PARAMS, root_options
from ftctl.commands.help_layout import Group
from ftctl.errors import EXIT_CODES

EPILOG = "Exit codes:\n" + "\n".join(f"  {int(code):>3}  {meaning}" for code, meaning in EXIT_CODES.items())

app = typer.Typer(
    name="ftctl",
    cls=Group,
    help="Start, follow and understand fine-tuning jobs with early stopping, on Together's API or "
         "the embedded simulator (the default when TOGETHER_API_KEY is not set).",
    epilog=EPILOG,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,  # `ftctl completion SHELL` instead of Typer's shell-guessing options
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ftctl {__version__}")
        raise typer.Exit()


def _root(ctx: typer.Context, **values: object) -> None:
    values.pop("version", None)
    root_options(ctx, **values)


_root.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
     inspect.Parameter("version", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
         bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version.")]),
     *ROOT_PARAMS])
app.callback()(_root)
completers.register_shells()

for group in (create, jobs, events, checkpoints, metrics, wait, explain, report, compare, download, files, completion,
              sim):
    group.register(app)
