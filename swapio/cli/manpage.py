"""Manual pages (roff, ``man 7 man`` macros) generated from the click commands.

One page per command: ``swapio.1`` for the root group and ``swapio-VERB.1`` for every verb,
``swapio-VERB-SUB.1`` for a group's verbs (``swapio-bitmap-resync.1``), as git names its
pages.  Lazy and plugin verbs are resolved through the group's own ``get_command``, so the
pages describe exactly the commands ``swapio --help`` lists.

A page is built from what ``--help`` shows: the first sentence of the help is the NAME line,
the usage pieces the SYNOPSIS, the help's paragraphs the DESCRIPTION (a ``\\b`` paragraph
stays as typed), an ``Examples:`` paragraph the EXAMPLES, and each option's help record the
OPTIONS.  EXIT STATUS is :data:`swapio.cli.exitcodes.TABLE` (README.md's "Exit codes").

The pages shipped in ``swapio/man/`` are this module's output (``make man`` rewrites them; a
test compares them with a fresh rendering).  Imported only when ``swapio man`` runs.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click

from swapio import __version__
from swapio.cli import exitcodes
from swapio.errors import UsageError

EXAMPLES_HEADING = "Examples:"
#: Where ``make install-man`` puts the pages.
DEFAULT_MANDIR = "/usr/local/share/man/man1"


@dataclass
class HelpText:
    """A command's help split the way a manual page needs it."""

    #: paragraphs of the DESCRIPTION; a preformatted one (``\\b``) keeps its line breaks
    paragraphs: list[tuple[bool, str]] = field(default_factory=list)
    #: one command line per example, with its trailing ``# comment`` if any
    examples: list[str] = field(default_factory=list)


def split_help(text: str) -> HelpText:
    """Split click help text into description paragraphs and the ``Examples:`` lines."""
    text = inspect.cleandoc(text.split("\f", 1)[0])
    out = HelpText()
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        preformatted = lines[0].strip() == "\b"
        if preformatted:
            lines = lines[1:]
        if lines and lines[0].strip() == EXAMPLES_HEADING:
            out.examples.extend(line.strip() for line in lines[1:] if line.strip())
        elif lines:
            body = "\n".join(line.rstrip() for line in lines)
            flowed = " ".join(line.strip() for line in lines)
            out.paragraphs.append((preformatted, body if preformatted else flowed))
    return out


def summary(command: click.Command) -> str:
    """The help's first paragraph, on one line (the NAME line and a COMMANDS entry)."""
    paragraphs = split_help(command.help or "").paragraphs
    return " ".join(paragraphs[0][1].split()) if paragraphs else ""


def escape(text: str) -> str:
    """Text as roff prints it literally: backslashes and hyphens escaped, `code` in bold."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"`([^`]+)`", r"\\fB\1\\fR", text)


def _line(text: str) -> str:
    """One roff text line (a leading ``.`` or ``'`` would be read as a request)."""
    escaped = escape(text)
    return "\\&" + escaped if escaped.startswith((".", "'")) else escaped


@dataclass(frozen=True)
class Page:
    """A command and where it sits: ``path`` is ``("swapio", "bitmap", "resync")``."""

    path: tuple[str, ...]
    command: click.Command
    ctx: click.Context

    @property
    def name(self) -> str:
        """The page's name: ``swapio-bitmap-resync``."""
        return "-".join(self.path)

    @property
    def filename(self) -> str:
        return f"{self.name}.1"


def walk(root: click.Command, name: str = "swapio") -> Iterator[Page]:
    """Every command under ``root`` (``root`` first, then each verb, depth first, sorted)."""
    ctx = click.Context(root, info_name=name, **root.context_settings)
    yield from _walk(root, ctx, (name,))


def _walk(command: click.Command, ctx: click.Context, path: tuple[str, ...]) -> Iterator[Page]:
    page = Page(path, command, ctx)
    yield page
    for sub in _subcommands(page):
        yield from _walk(sub.command, sub.ctx, sub.path)


def _subcommands(page: Page) -> list[Page]:
    """The verbs directly under ``page`` (none for a plain command), sorted."""
    group, ctx = page.command, page.ctx
    if not isinstance(group, click.Group):
        return []
    subs = []
    for verb in group.list_commands(ctx):
        sub = group.get_command(ctx, verb)
        if sub is not None and not sub.hidden:
            sub_ctx = click.Context(sub, info_name=verb, parent=ctx)
            subs.append(Page((*page.path, verb), sub, sub_ctx))
    return subs


def render(page: Page) -> str:
    """The roff source of ``page``."""
    command, ctx = page.command, page.ctx
    helptext = split_help(command.help or "")
    subs = _subcommands(page)
    out = [
        f'.TH "{page.name.upper()}" "1" "" "swapio {__version__}" "swapio manual"',
        ".nh",  # no hyphenation: option names stay whole
        ".SH NAME",
        f"{escape(page.name)} \\- {escape(summary(command))}",
        ".SH SYNOPSIS",
        f".B {escape(' '.join(page.path))}",
        escape(" ".join(command.collect_usage_pieces(ctx))),
        ".SH DESCRIPTION",
    ]
    for preformatted, text in helptext.paragraphs:
        if preformatted:
            out += [".PP", ".nf", *(_line(line) for line in text.splitlines()), ".fi"]
        else:
            out += [".PP", _line(text)]
    if subs:
        out.append(".SH COMMANDS")
        for sub in subs:
            short = summary(sub.command)
            out += [
                ".TP",
                f"\\fB{escape(sub.path[-1])}\\fR",
                _line(short),
                f"See \\fB{sub.name}\\fR(1).",
            ]
    options = [p for p in command.get_params(ctx) if isinstance(p, click.Option) and not p.hidden]
    if options:
        out.append(".SH OPTIONS")
        for option in options:
            record = option.get_help_record(ctx)
            if record is None:
                continue
            names, help_ = record
            out += [".TP", f"\\fB{escape(names)}\\fR"]
            if help_:
                out.append(_line(help_))
    examples = helptext.examples or [
        line for sub in subs for line in split_help(sub.command.help or "").examples[:1]
    ]
    if examples:
        out += [".SH EXAMPLES", ".nf", ".RS 4"]
        out += [_line(example) for example in examples]
        out += [".RE", ".fi"]
    out += [".SH EXIT STATUS"]
    for code, meaning in exitcodes.TABLE:
        out += [".TP", f"\\fB{code}\\fR", _line(meaning)]
    related = [p.name for p in (*subs,)] or (["swapio"] if len(page.path) > 1 else [])
    if len(page.path) > 2:
        related = ["-".join(page.path[:-1]), *related]
    if related:
        out += [".SH SEE ALSO", ", ".join(f"\\fB{escape(name)}\\fR(1)" for name in related)]
    return "\n".join(out) + "\n"


def pages(root: click.Command) -> dict[str, str]:
    """File name → roff source, for every command under ``root``."""
    return {page.filename: render(page) for page in walk(root)}


def find_page(root: click.Command, verbs: tuple[str, ...]) -> str:
    """The page of ``swapio VERBS...`` (``()`` is ``swapio`` itself)."""
    for page in walk(root):
        if page.path[1:] == verbs:
            return render(page)
    raise UsageError(f"no manual page for 'swapio {' '.join(verbs)}': no such verb")


def install(root: click.Command, directory: Path) -> list[Path]:
    """Write every page into ``directory`` (created if missing); return the files written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for filename, text in pages(root).items():
            path = directory / filename
            path.write_text(text, encoding="utf-8")
            written.append(path)
    except OSError as exc:
        raise UsageError(f"cannot write manual pages to {directory}: {exc.strerror}") from None
    return written


@click.command()
@click.argument("verbs", nargs=-1, metavar="[VERB [SUBVERB]]")
@click.option(
    "--install",
    "directory",
    type=click.Path(file_okay=False),
    default=None,
    help=f"Write every page into this directory (e.g. {DEFAULT_MANDIR}) instead of printing one.",
)
@click.pass_context
def man(ctx: click.Context, verbs: tuple[str, ...], directory: str | None) -> None:
    """Print the manual page (roff) of swapio or of one verb, or install them all.

    The pages are rendered from the commands installed, plugin verbs included.

    \b
    Examples:
      swapio man | man -l -
      swapio man bitmap resync | man -l -
      swapio man --install /usr/local/share/man/man1
    """
    root = ctx.find_root().command
    if directory is None:
        click.echo(find_page(root, verbs), nl=False)
        return
    if verbs:
        raise UsageError("--install writes every page; give no VERB with it")
    for path in install(root, Path(directory)):
        click.echo(str(path))
