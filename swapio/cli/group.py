"""The root click group: one-line user errors, and verbs imported only when they run.

A lazy verb is known by name (from plugin metadata, or a core module path) and listed by
``swapio --help`` without importing anything; its module is imported when the verb runs, its
``--help`` is asked for, or shell completion needs it.  That is what keeps ``swapio --help``
and ``swapio info`` from importing aiohttp, the bench and every plugin.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import click

from swapio.cli import exitcodes
from swapio.errors import PluginError, SwapioError


def fail(exc: SwapioError) -> int:
    """Report a user error in one line; return its exit code."""
    click.echo(f"swapio: error: {exc}", err=True)
    return exitcodes.for_error(exc)


class LazyVerb(NamedTuple):
    """A verb whose click command is built by ``load`` the first time it is needed."""

    load: Callable[[], click.Command]
    #: shown by ``swapio --help`` before the verb is loaded
    short_help: str


class SwapioGroup(click.Group):
    """A click group that turns swapio errors into one line and an exit code, and loads
    lazy verbs on first use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, LazyVerb] = {}
        #: a plugin's verbs could not be collected (it failed to import): raised by a verb
        #: name nothing else provides, which may have been that plugin's
        self.deferred_error: PluginError | None = None

    def add_lazy(self, name: str, verb: LazyVerb) -> None:
        """Know ``name`` now, build its command when it is first needed."""
        self.lazy[name] = verb

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is not None:
            return command
        verb = self.lazy.get(cmd_name)
        if verb is None:
            if self.deferred_error is not None:
                raise self.deferred_error
            return None
        command = verb.load()
        self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click's, but a verb not loaded yet shows its :attr:`LazyVerb.short_help`."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows: list[tuple[str, str]] = []
        for name in names:
            command = self.commands.get(name)
            if command is None:
                rows.append((name, self.lazy[name].short_help))
            elif not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SwapioError as exc:
            ctx.exit(fail(exc))
        except BrokenPipeError:
            # the reader went away (e.g. `| head`): not an error of ours
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(exitcodes.OK)
