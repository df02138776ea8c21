"""ftctl's help screens: Typer's Rich panels, but an option's names are never cut.

Typer lays each panel out as one table whose columns all shrink together, so at 80 columns it
printed ``--early-stopping,--…`` and ``--gradient-accumulatio…`` (issue 12). Here the names, short
names and value columns keep their full width and only the description wraps; when the terminal is
too narrow for that, each option takes its own line and its description goes below, indented.
Installed when a help screen is drawn (``Command``/``Group.format_help``), never at start-up.
"""

from __future__ import annotations

from typing import Any

import typer.core

MIN_HELP_WIDTH = 24  # narrower than this, descriptions go below the names


class Command(typer.core.TyperCommand):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        _install()
        return super().format_help(ctx, formatter)


class Group(typer.core.TyperGroup):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        _install()
        return super().format_help(ctx, formatter)


def _install() -> None:
    from typer import rich_utils

    rich_utils._print_options_panel = print_options_panel


def option_cells(param: Any, ctx: Any) -> tuple[str, str, str]:
    """(names, short names, value) as shown: ``--lora / --no-lora``, ``-t``, ``<int>``."""
    from typer import rich_utils as ru
    from typer.core import TyperArgument

    if isinstance(param, TyperArgument):
        value = param.type.get_metavar(param=param, ctx=ctx) or f"<{param.type.name}>"
        return param.metavar or (param.name or "").upper(), "", value
    longs = [o for o in param.opts if o.startswith("--")] + \
        [o for o in param.secondary_opts if o.startswith("--")]
    shorts = [o for o in [*param.opts, *param.secondary_opts] if not o.startswith("--")]
    value = param.make_metavar(ctx=ctx) or ""
    if "bool" in value.lower():
        value = ""
    from typer._click import types

    if isinstance(param.type, types._NumberRangeBase) and not (
            param.count and param.type.min == 0 and param.type.max is None):
        described = param.type._describe_range()
        if described:
            value += ru.RANGE_STRING.format(described)
    return " / ".join(longs), ", ".join(shorts), value.strip()


def print_options_panel(*, name: str, params: list, ctx: Any, markup_mode: Any, console: Any) -> None:
    if not params:
        return
    from rich.padding import Padding
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text
    from typer import rich_utils as ru

    cells = [option_cells(p, ctx) for p in params]
    required = [Text(ru.REQUIRED_SHORT_STRING, style=ru.STYLE_REQUIRED_SHORT) if p.required else Text("")
                for p in params]
    has_required = any(p.required for p in params)
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    shown = [i for i in range(3) if widths[i]]  # no empty columns: they cost width
    fixed = sum(widths[i] for i in shown) + 2 * len(shown) + (3 if has_required else 0)
    inner = console.width - 4  # the panel's border and padding

    def name_text(cell: tuple[str, str, str], i: int) -> Text:
        text = Text(cell[i], no_wrap=True, overflow="fold")
        return ru.types_highlighter(text) if i == 2 else ru.highlighter(text)

    if inner - fixed >= MIN_HELP_WIDTH:
        table = Table(show_header=False, box=None, expand=True, padding=(0, 1), pad_edge=False)
        if has_required:
            table.add_column(no_wrap=True, width=1)
        for i in shown:
            table.add_column(no_wrap=True, width=widths[i])
        table.add_column(ratio=1)
        for param, cell, req in zip(params, cells, required):
            help_ = ru._get_parameter_help(param=param, ctx=ctx, markup_mode=markup_mode)
            table.add_row(*([req] if has_required else []), *(name_text(cell, i) for i in shown), help_)
    else:
        table = Table.grid()
        table.add_column()
        for param, cell, req in zip(params, cells, required):
            line = Text(no_wrap=True, overflow="fold")
            if has_required:
                line.append_text(req if param.required else Text(" "))
                line.append(" ")
            line.append_text(Text("  ").join(name_text(cell, i) for i in shown if cell[i]))
            table.add_row(line)
            table.add_row(Padding(ru._get_parameter_help(param=param, ctx=ctx, markup_mode=markup_mode),
                                  (0, 0, 0, 4)))
    console.print(Panel(table, border_style=ru.STYLE_OPTIONS_PANEL_BORDER, title=name,
                        title_align=ru.ALIGN_OPTIONS_PANEL))
