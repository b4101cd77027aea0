"""``swapio completion bash|zsh|fish``: print the shell completion script.

The script is click's (:mod:`click.shell_completion`): the shell calls ``swapio`` back with
``_SWAPIO_COMPLETE=<shell>_complete`` and the words typed so far, and swapio answers with the
verbs, options and choices that fit.  Imported only when the verb runs (``swapio --help``
stays light).
"""

from __future__ import annotations

import click
from click.shell_completion import CompletionItem, get_completion_class

from swapio.errors import UsageError

#: The shells click can complete for, in the order the help lists them.
SHELLS = ("bash", "zsh", "fish")
#: The environment variable the scripts set when they call swapio back.
COMPLETE_VAR = "_SWAPIO_COMPLETE"


def completion_script(root: click.Command, shell: str) -> str:
    """The completion script of ``root`` (the ``swapio`` group) for ``shell``."""
    if shell not in SHELLS:
        raise UsageError(f"no completion for shell {shell!r}; choose one of {', '.join(SHELLS)}")
    cls = get_completion_class(shell)
    assert cls is not None  # click ships all three
    return cls(root, {}, "swapio", COMPLETE_VAR).source()


def _complete_shell(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    return [CompletionItem(shell) for shell in SHELLS if shell.startswith(incomplete)]


@click.command()
@click.argument("shell", metavar="{bash|zsh|fish}", shell_complete=_complete_shell)
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for bash, zsh or fish.

    Load it in the current shell, or save it where your shell reads completions from.

    \b
    Examples:
      eval "$(swapio completion bash)"
      swapio completion bash > ~/.local/share/bash-completion/completions/swapio
      swapio completion zsh > "${fpath[1]}/_swapio"
      swapio completion fish > ~/.config/fish/completions/swapio.fish
    """
    click.echo(completion_script(ctx.find_root().command, shell), nl=False)
