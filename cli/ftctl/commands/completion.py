"""completion SHELL: print the shell completion script (the same files as ``completions/``)."""

from typing import Annotated

import typer

from ftctl.commands import completers
from ftctl.commands.common import Session, command
from ftctl.completion_scripts import SHELLS
from ftctl.output.render import Shown

HELP = """Print the completion script for SHELL (bash, zsh, fish or powershell) on stdout.

The shell is never guessed. Once installed, TAB completes commands, options, --fields names, presets and the ids of jobs you created, listed or retrieved (from ftctl's local cache: no network call at TAB time). To install:

bash:  source <(ftctl completion bash)    # in ~/.bashrc
zsh:   ftctl completion zsh > ~/.zfunc/_ftctl
       # and in ~/.zshrc, before compinit: fpath+=(~/.zfunc)
fish:  ftctl completion fish > ~/.config/fish/completions/ftctl.fish
pwsh:  ftctl completion powershell | Out-String | Invoke-Expression
"""


def register(app: typer.Typer) -> None:
    command(app, "completion", output="completion", help=HELP, without=("backend", "base_url"))(completion)


def completion(session: Session, shell: Annotated[str, typer.Argument(
        metavar="SHELL", help="bash, zsh, fish or powershell.", show_default=False,
        autocompletion=completers.choices(*SHELLS))]) -> Shown:
    from ftctl.completion_scripts import script
    from ftctl.errors import InvalidInput

    name = shell.strip().lower()
    name = "powershell" if name == "pwsh" else name
    if name not in SHELLS:
        raise InvalidInput(f"ftctl has no completion script for shell {shell!r}; "
                           f"choose one of: {', '.join(SHELLS)}")
    text = script(name)
    return Shown({"shell": name, "script": text}, lambda term: term.out.write(text))
