"""Cold start: the CLI imports a plugin only when one of its schemes or verbs is used.

Checked by the modules a real ``swapio`` process has in ``sys.modules`` (never by timing).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .imports import run_swapio

PLUGIN_PACKAGES = (
    "swapio_memory",
    "swapio_file",
    "swapio_nfs",
    "swapio_flashlog",
    "swapio_mdraid",
    "swapio_http",
    "swapio_redis",
)


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, set[str]]:
    """Run ``swapio ARGS``; return its exit code, its stderr and every module it imported."""
    code, _, err, imported = run_swapio(*args, env=env)
    return code, err, imported


def plugins_in(imported: set[str]) -> set[str]:
    return {name.split(".")[0] for name in imported if name.split(".")[0] in PLUGIN_PACKAGES}


@pytest.fixture(scope="module")
def area(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"file://{tmp_path_factory.mktemp('startup')}/a.swap"
    code, err, _ = run("create", url, "--pages", "4")
    assert code == 0, err
    return url


def test_help_lists_plugin_verbs_without_importing_a_plugin_aiohttp_or_the_bench() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "swapio", "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0
    for verb in ("bitmap", "flash", "serve", "bench", "info"):
        assert f"\n  {verb} " in proc.stdout
    code, _, imported = run("--help")
    assert code == 0
    assert plugins_in(imported) == set()
    assert "aiohttp" not in imported
    assert not {m for m in imported if m.startswith("swapio.bench")}


def test_info_on_a_file_url_imports_the_file_plugin_only(area: str) -> None:
    code, err, imported = run("info", area)
    assert code == 0, err
    assert plugins_in(imported) == {"swapio_file"}
    assert "aiohttp" not in imported


def test_a_plugin_verb_imports_that_plugin_only(tmp_path: Path) -> None:
    code, err, imported = run(
        "bitmap", "create", str(tmp_path / "b"), "--sync-size", "1M", "--chunk-size", "64K"
    )
    assert code == 0, err
    assert plugins_in(imported) - {"swapio_file"} == {"swapio_mdraid"}
    assert "aiohttp" not in imported


def test_bitmap_examine_imports_the_mirror_plugin_and_the_file_backend_only(
    tmp_path: Path,
) -> None:
    bitmap = str(tmp_path / "b")
    code, err, _ = run("bitmap", "create", bitmap, "--sync-size", "1M", "--chunk-size", "64K")
    assert code == 0, err
    code, err, imported = run("bitmap", "examine", bitmap)
    assert code == 0, err
    assert plugins_in(imported) == {"swapio_mdraid", "swapio_file"}
    assert "aiohttp" not in imported


def test_bench_help_loads_the_bench_when_asked() -> None:
    code, err, imported = run("bench", "--help")
    assert code == 0, err
    assert any(m.startswith("swapio.bench.") for m in imported)


def _fake_plugin(root: Path, entry_points: str, module: str = "") -> dict[str, str]:
    """A distribution ``fake`` on PYTHONPATH with ``entry_points``; ``module`` is the source
    of ``swapio_fake_plugin`` (absent if empty)."""
    dist = root / "fake-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(entry_points)
    if module:
        (root / "swapio_fake_plugin.py").write_text(module)
    return {**os.environ, "PYTHONPATH": str(root)}


BROKEN_DECLARED = """\
[swapio]
fake = swapio_fake_plugin
[swapio.schemes]
fake = swapio_fake_plugin
[swapio.commands]
fakeverb = swapio_fake_plugin
"""


def test_a_broken_declared_plugin_breaks_only_its_own_scheme_and_verb(
    tmp_path: Path, area: str
) -> None:
    env = _fake_plugin(tmp_path, BROKEN_DECLARED, "raise ImportError('half installed')\n")
    code, err, _ = run("info", area, env=env)
    assert code == 0, err
    code, err, _ = run("--help", env=env)
    assert code == 0, err
    for args in (("info", "fake://x"), ("fakeverb",), ("backends",)):
        code, err, _ = run(*args, env=env)
        assert code == 4, err
        assert err.count("\n") == 0, err
        assert "plugin 'fake'" in err
        assert "half installed" in err
        assert "SWAPIO_DISABLED_PLUGINS=fake" in err
    code, err, _ = run("backends", env={**env, "SWAPIO_DISABLED_PLUGINS": "fake"})
    assert code == 0, err


def test_a_scheme_declared_by_two_plugins_names_both_before_importing_either(
    tmp_path: Path, area: str
) -> None:
    env = _fake_plugin(
        tmp_path,
        "[swapio]\nfake = swapio_fake_plugin\n[swapio.schemes]\nfile = swapio_fake_plugin\n",
        "raise ImportError('imported although only metadata was needed')\n",
    )
    code, err, imported = run("info", area, env=env)
    assert code == 4, err
    assert "URL scheme 'file' is claimed by two plugins: 'fake' and 'file'" in err
    assert "SWAPIO_DISABLED_PLUGINS" in err
    assert plugins_in(imported) == set()
    assert "swapio_fake_plugin" not in imported
    code, err, _ = run("info", area, env={**env, "SWAPIO_DISABLED_PLUGINS": "fake"})
    assert code == 0, err
