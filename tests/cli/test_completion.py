"""``swapio completion bash|zsh|fish``: the script, and completion through it in a real bash."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SWAPIO = [sys.executable, "-m", "swapio"]
#: the scripts call `swapio` back by name: the one installed next to this interpreter
PATH = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SWAPIO, *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_for_each_shell(shell: str) -> None:
    proc = run("completion", shell)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "_SWAPIO_COMPLETE" in proc.stdout
    assert f"{shell}_complete" in proc.stdout  # the callback names this shell


def test_an_unknown_shell_is_a_one_line_usage_error() -> None:
    proc = run("completion", "tcsh")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("swapio: error: ")
    assert "'tcsh'" in proc.stderr
    assert "bash, zsh, fish" in proc.stderr


def bash_complete(words: list[str]) -> list[str]:
    """What the bash script offers for the last of ``words`` (the word being typed)."""
    assert shutil.which("swapio", path=PATH), "the swapio console script is not installed"
    script = run("completion", "bash").stdout
    words_shell = " ".join(f"'{w}'" for w in words)
    program = (
        f"{script}\n"
        f"COMP_WORDS=({words_shell}); COMP_CWORD={len(words) - 1}; COMPREPLY=()\n"
        "_swapio_completion swapio\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PATH": PATH},
    )
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if line]


def test_bash_completes_verbs_lazy_and_plugin_ones_included() -> None:
    assert bash_complete(["swapio", "bitm"]) == ["bitmap"]
    assert bash_complete(["swapio", "comp"]) == ["completion"]
    assert {"backends", "bench", "flash", "serve", "man"} <= set(bash_complete(["swapio", ""]))


def test_bash_completes_a_plugin_verbs_options_and_the_shell_names() -> None:
    assert bash_complete(["swapio", "bitmap", "resync", "m0.bitmap", "--tar"]) == ["--target"]
    assert bash_complete(["swapio", "completion", ""]) == ["bash", "zsh", "fish"]
