"""The ``swapio`` command line (click).

Core verbs live in :mod:`swapio.cli.areas`.  ``swapio bench`` and every plugin's verbs are
*lazy* (:mod:`swapio.cli.group`): their names come from entry-point metadata (or, for the
bench, from here) and their modules — the plugin, aiohttp, the bench — are imported only when
the verb runs.  Plugins that declare no verbs in metadata still add theirs through the
``swapio_add_commands`` hook, at start-up.

User errors (any :class:`~swapio.errors.SwapioError`) print one line, ``swapio: error: ...``,
on stderr and exit with the code from :mod:`swapio.cli.exitcodes`; only bugs show a traceback.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

import click

from swapio import __version__
from swapio.cli.areas import CORE_COMMANDS
from swapio.cli.group import LazyVerb, SwapioGroup, fail
from swapio.errors import PluginError, SwapioError
from swapio.plugins import PluginHost

__all__ = ["SwapioGroup", "build_cli", "fail", "main"]

#: ``swapio bench`` is core but heavy (aiohttp, the peers): imported when it runs.
BENCH = ("swapio.bench.cli", "bench")
#: Core verbs imported only when they run, with the line ``swapio --help`` shows for them.
LAZY_CORE = {
    "completion": (
        ("swapio.cli.completion", "completion"),
        "Print the shell completion script for bash, zsh or fish.",
    ),
    "man": (("swapio.cli.manpage", "man"), "Print or install swapio's manual pages."),
}


def _core_verb(module: str, attr: str) -> Callable[[], click.Command]:
    def load() -> click.Command:
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command

    return load


def _plugin_verb(host: PluginHost, plugin: str, verb: str) -> Callable[[], click.Command]:
    def load() -> click.Command:
        return host.plugin_commands(plugin)[verb]

    return load


def build_cli(host: PluginHost) -> click.Group:
    """The root group: the core verbs, the bench and every plugin's verbs (lazily)."""

    @click.group(cls=SwapioGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="swapio")
    @click.pass_context
    def cli(ctx: click.Context) -> None:
        """Swap I/O to anything: files, NFS, flash logs, mirrors, page servers, Redis.

        Every verb names a swap area by URL; `swapio backends` lists the URL schemes.
        `swapio VERB --help` shows a verb's options and examples, `swapio man VERB` its
        manual page.
        """
        ctx.obj = host

    assert isinstance(cli, SwapioGroup)
    for command in CORE_COMMANDS:
        cli.add_command(command)
    cli.add_lazy(
        "bench",
        LazyVerb(
            _core_verb(*BENCH),
            "Measure every installed backend and the peer tools (see `swapio bench --help`).",
        ),
    )
    for verb, (where, short_help) in LAZY_CORE.items():
        cli.add_lazy(verb, LazyVerb(_core_verb(*where), short_help))
    for verb, plugin in sorted(host.declared_commands().items()):
        cli.add_lazy(
            verb,
            LazyVerb(
                _plugin_verb(host, plugin, verb),
                f"From the {plugin!r} plugin (see `swapio {verb} --help`).",
            ),
        )
    try:
        host.add_commands(cli)
    except PluginError as exc:
        cli.deferred_error = exc  # breaks the verbs that need that plugin, not the others
    return cli


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    try:
        host = PluginHost()
        cli = build_cli(host)
    except SwapioError as exc:
        sys.exit(fail(exc))
    cli.main(args=argv, prog_name="swapio")
