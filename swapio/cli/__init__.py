"""The ``swapio`` command line (click).  Plugins add verbs through ``swapio_add_commands``.

User errors (any :class:`~swapio.errors.SwapioError`) print one line, ``swapio: error: ...``,
on stderr and exit with the code from :mod:`swapio.cli.exitcodes`; only bugs show a traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from swapio import __version__
from swapio.bench.cli import bench
from swapio.cli import exitcodes
from swapio.cli.areas import CORE_COMMANDS
from swapio.errors import SwapioError
from swapio.plugins import PluginHost


def fail(exc: SwapioError) -> int:
    """Report a user error in one line; return its exit code."""
    click.echo(f"swapio: error: {exc}", err=True)
    return exitcodes.for_error(exc)


class SwapioGroup(click.Group):
    """A click group that turns swapio errors into one line and an exit code."""

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


def build_cli(host: PluginHost) -> click.Group:
    """The root group with the core verbs and every plugin's verbs."""

    @click.group(cls=SwapioGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="swapio")
    @click.pass_context
    def cli(ctx: click.Context) -> None:
        """swapio: swap I/O to anything (see `swapio backends` for the URL schemes)."""
        ctx.obj = host

    for command in CORE_COMMANDS:
        cli.add_command(command)
    cli.add_command(bench)
    host.add_commands(cli)
    return cli


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    try:
        host = PluginHost()
        cli = build_cli(host)
    except SwapioError as exc:
        sys.exit(fail(exc))
    cli.main(args=argv, prog_name="swapio")
