"""Run the ``swapio`` command line in a fresh interpreter and see which modules it imported.

``-X importtime`` misses modules loaded through :func:`importlib.import_module` (the way
plugins are loaded) and logs only their nested imports; the list here is ``sys.modules``
itself at exit, written to stderr by an ``atexit`` hook on one line of its own.
"""

from __future__ import annotations

import subprocess
import sys

_MARK = "SWAPIO-TEST-MODULES "
_WRAPPER = f"""\
import atexit, sys
atexit.register(lambda: sys.stderr.write({_MARK!r} + " ".join(sorted(sys.modules)) + "\\n"))
sys.argv[0] = "swapio"
from swapio.cli import main
main()
"""


def run_swapio(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str, set[str]]:
    """``swapio ARGS``: exit code, stdout, stderr (without the module list), modules loaded."""
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *args],
        capture_output=True,
        timeout=60,
        check=False,
        env=env,
        text=True,
    )
    modules: set[str] = set()
    other: list[str] = []
    for line in proc.stderr.splitlines():
        if line.startswith(_MARK):
            modules = set(line[len(_MARK) :].split())
        else:
            other.append(line)
    return proc.returncode, proc.stdout, "\n".join(other), modules
