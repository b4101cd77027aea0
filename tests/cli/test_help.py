"""Every verb's ``--help`` teaches by example and describes every option.

The commands are walked the way ``swapio`` resolves them (core, lazy and plugin verbs, and
the verbs of plugin groups such as ``swapio bitmap resync``); each example is parsed by the
real command, so an example naming a removed option fails here.
"""

from __future__ import annotations

import shlex
from functools import cache

import click
import pytest
from click.testing import CliRunner

from swapio.cli import build_cli
from swapio.plugins import PluginHost

#: Verbs whose owner has not written examples yet (the lead tracks them; strict: a verb that
#: gains its examples makes this test XPASS and fail until it is taken off the list).
EXAMPLES_PENDING: dict[tuple[str, ...], str] = {}
SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "2>", "2>&1"}


@cache
def cli() -> click.Group:
    return build_cli(PluginHost())


def commands() -> list[tuple[tuple[str, ...], click.Command]]:
    """(path, command) for the root and every verb under it, as the group resolves them."""
    found: list[tuple[tuple[str, ...], click.Command]] = []

    def visit(path: tuple[str, ...], command: click.Command, ctx: click.Context) -> None:
        found.append((path, command))
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None, f"{' '.join(path)} lists {name} but cannot resolve it"
                visit((*path, name), sub, click.Context(sub, info_name=name, parent=ctx))

    visit((), cli(), click.Context(cli(), info_name="swapio"))
    return found


def command_name(path: tuple[str, ...]) -> str:
    return " ".join(("swapio", *path))


def leaf_verbs() -> list[tuple[str, ...]]:
    return [path for path, command in commands() if not isinstance(command, click.Group)]


def help_of(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(cli(), [*path, "--help"], prog_name="swapio")
    assert result.exit_code == 0, result.output
    return result.output


def examples_of(path: tuple[str, ...]) -> list[str]:
    lines = help_of(path).splitlines()
    if "  Examples:" not in lines:
        return []
    block = lines[lines.index("  Examples:") + 1 :]
    return [line.strip() for line in block[: block.index("")] if line.strip()]


def swapio_invocations(line: str) -> list[list[str]]:
    """The ``swapio ...`` argument lists in one example shell line (pipes, redirections and
    ``# comments`` cut off; ``"$(swapio ...)"`` is left to the shell)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;<>")
    lexer.whitespace_split = True
    segments: list[list[str]] = [[]]
    for token in lexer:
        if token in SHELL_OPERATORS:
            segments.append([])
        else:
            segments[-1].append(token)
    return [segment[1:] for segment in segments if segment[:1] == ["swapio"]]


def parse(args: list[str]) -> None:
    """Parse ``swapio ARGS`` down to the verb as click would run it, without running it."""
    command: click.Command = cli()
    ctx = command.make_context("swapio", list(args))
    while isinstance(command, click.Group):
        rest = [*ctx._protected_args, *ctx.args]  # as click.Group.invoke (no deprecation)
        name, sub, rest = command.resolve_command(ctx, rest)
        assert name is not None
        assert sub is not None
        command = sub
        ctx = command.make_context(name, rest, parent=ctx)


def test_the_walk_reaches_core_lazy_and_plugin_verbs() -> None:
    verbs = set(leaf_verbs())
    for path in (
        ("backends",),
        ("create",),
        ("info",),
        ("read",),
        ("write",),
        ("discard",),
        ("bench",),
        ("completion",),
        ("man",),
        ("serve",),
        ("flash", "format"),
        ("flash", "inspect"),
        ("flash", "gc"),
        ("bitmap", "create"),
        ("bitmap", "resync"),
    ):
        assert path in verbs


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(path, marks=pytest.mark.xfail(strict=True, reason=EXAMPLES_PENDING[path]))
        if path in EXAMPLES_PENDING
        else path
        for path in leaf_verbs()
    ],
    ids=command_name,
)
def test_every_verb_has_examples_of_itself(path: tuple[str, ...]) -> None:
    examples = examples_of(path)
    assert examples, f"swapio {' '.join(path)} --help has no Examples section"
    mine = [line for line in examples if f"swapio {' '.join(path)}" in line]
    assert mine, f"no example of swapio {' '.join(path)} among {examples}"


@pytest.mark.parametrize("path", leaf_verbs(), ids=command_name)
def test_every_example_parses_with_the_verb(path: tuple[str, ...]) -> None:
    for line in examples_of(path):
        for args in swapio_invocations(line):
            try:
                parse(args)
            except click.ClickException as exc:
                pytest.fail(f"example {line!r} does not parse: {exc.format_message()}")


@pytest.mark.parametrize("path", [path for path, _ in commands()], ids=command_name)
def test_every_option_has_a_description(path: tuple[str, ...]) -> None:
    command = dict(commands())[path]
    ctx = click.Context(command)
    for param in command.get_params(ctx):
        if isinstance(param, click.Option) and not param.hidden:
            assert (param.help or "").strip(), f"swapio {' '.join(path)} {param.opts[0]}: no help"


@pytest.mark.parametrize("path", [path for path, _ in commands()], ids=command_name)
def test_repeatable_options_say_they_repeat(path: tuple[str, ...]) -> None:
    command = dict(commands())[path]
    for param in command.get_params(click.Context(command)):
        if isinstance(param, click.Option) and param.multiple:
            assert "repeat" in (param.help or "").lower(), f"{param.opts[0]}: {param.help!r}"


def test_an_example_with_an_unknown_option_is_caught() -> None:
    with pytest.raises(click.NoSuchOption):
        parse(["info", "file:///x", "--no-such-option"])
    with pytest.raises(click.MissingParameter):
        parse(["bitmap", "resync", "m0.bitmap", "--source", "a.img"])


def test_shell_lines_are_split_into_swapio_invocations() -> None:
    line = "head -c 4096 /dev/urandom | swapio write u --slot 3 > out.json  # a comment"
    assert swapio_invocations(line) == [["write", "u", "--slot", "3"]]
    assert swapio_invocations('eval "$(swapio completion bash)"') == []
