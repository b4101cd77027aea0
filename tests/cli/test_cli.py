"""The `swapio` command line, run as a real subprocess (what users type)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from swapio.testing import page_pattern

SWAPIO = [sys.executable, "-m", "swapio"]


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*SWAPIO, *args], input=stdin, capture_output=True, timeout=60, check=False
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[bytes], code: int, text: str) -> None:
    err = proc.stderr.decode()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    assert err.startswith("swapio: error: ")
    assert text in err


@pytest.fixture
def area(tmp_path: Path) -> str:
    url = f"file://{tmp_path}/a.swap"
    assert run("create", url, "--pages", "16").returncode == 0
    return url


def test_backends_json_lists_memory_and_file() -> None:
    proc = run("backends", "--json")
    assert proc.returncode == 0
    doc = json.loads(proc.stdout)
    by_name = {b["name"]: b for b in doc["backends"]}
    assert {"memory", "file"} <= set(by_name)
    assert by_name["file"]["schemes"] == ["file"]
    assert "durable" in by_name["file"]["capabilities"]
    assert by_name["file"]["version"]


def test_backends_text_has_a_header_and_aligned_columns() -> None:
    proc = run("backends")
    assert proc.returncode == 0
    lines = proc.stdout.decode().splitlines()
    header = lines[0]
    assert header.split() == ["NAME", "VERSION", "SCHEMES", "CAPABILITIES", "SUMMARY"]
    starts = [header.index(col) for col in ("VERSION", "SCHEMES", "CAPABILITIES", "SUMMARY")]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert {"file", "memory"} <= set(rows)
    for line in rows.values():
        for start in starts:  # every column starts under its heading, after a blank
            assert line[start - 1] == " ", line
            assert line[start] != " ", line
    assert rows["file"][starts[1] :].startswith("file ")


def test_write_then_read_round_trip(area: str, tmp_path: Path) -> None:
    data = page_pattern(3, 0, 4096) + page_pattern(4, 0, 4096)
    assert run("write", area, "--slot", "3", "--count", "2", stdin=data).returncode == 0
    proc = run("read", area, "--slot", "3", "--count", "2")
    assert proc.returncode == 0
    assert proc.stdout == data
    out = tmp_path / "out"
    assert run("read", area, "--slot", "3", "--count", "2", "--to", str(out)).returncode == 0
    assert out.read_bytes() == data


def test_write_from_file_and_json(area: str, tmp_path: Path) -> None:
    src = tmp_path / "page"
    src.write_bytes(page_pattern(1, 1, 4096))
    proc = run("write", area, "--slot", "1", "--from", str(src), "--json")
    assert json.loads(proc.stdout) == {"url": area, "slot": 1, "count": 1, "bytes": 4096}


def test_info_json(area: str) -> None:
    doc = json.loads(run("info", area, "--json").stdout)
    assert (doc["pages"], doc["page_size"], doc["backend"]) == (16, 4096, "file")
    assert doc["capabilities"]["discard"] is True


def test_discard_zeroes(area: str) -> None:
    run("write", area, "--slot", "2", stdin=page_pattern(2, 0, 4096))
    assert run("discard", area, "--slot", "2").returncode == 0
    assert run("read", area, "--slot", "2").stdout == bytes(4096)


def test_wrong_input_length_writes_nothing(area: str) -> None:
    run("write", area, "--slot", "5", stdin=page_pattern(5, 0, 4096))
    proc = run("write", area, "--slot", "5", stdin=b"short")
    assert_one_line_error(proc, 2, "exactly 4096 bytes")
    proc = run("write", area, "--slot", "5", stdin=page_pattern(0, 0, 4096) + b"x")
    assert_one_line_error(proc, 2, "more than 4096")
    assert run("read", area, "--slot", "5").stdout == page_pattern(5, 0, 4096)


def test_slot_out_of_range(area: str) -> None:
    assert_one_line_error(run("read", area, "--slot", "15", "--count", "2"), 3, "out of range")
    assert_one_line_error(run("read", area, "--slot", "-1"), 3, "out of range")


def test_create_refuses_existing(area: str) -> None:
    assert_one_line_error(run("create", area, "--pages", "4"), 3, "already exists")
    assert json.loads(run("info", area, "--json").stdout)["pages"] == 16


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (("info", "nope://x"), 2, "no backend serves URL scheme 'nope'"),
        (("info", "/tmp/no-scheme"), 2, "has no scheme"),
        (("info", "file:///definitely/missing"), 3, "no such file"),
        (("create", "file:///tmp/x", "--pages", "4", "--page-size", "1000"), 2, "power of two"),
        (("create", "file:///tmp/x", "--pages", "0"), 2, "at least one page"),
        (("info", "file:///tmp/x?bogus=1"), 2, "bogus"),
    ],
)
def test_user_errors_are_one_line(args: tuple[str, ...], code: int, text: str) -> None:
    assert_one_line_error(run(*args), code, text)


def test_holey_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "holes"
    with open(path, "wb") as f:
        f.truncate(65536)
    assert_one_line_error(run("info", f"file://{path}"), 3, "holes")


def test_broken_plugin_is_named(tmp_path: Path) -> None:
    dist = tmp_path / "broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[swapio]\nbroken = swapio_no_such_module\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run(
        [*SWAPIO, "backends"], capture_output=True, env=env, timeout=60, check=False
    )
    assert_one_line_error(proc, 4, "plugin 'broken'")
    env["SWAPIO_DISABLED_PLUGINS"] = "broken"
    proc = subprocess.run(
        [*SWAPIO, "backends"], capture_output=True, env=env, timeout=60, check=False
    )
    assert proc.returncode == 0


def test_output_to_a_full_device_is_one_line_error(area: str) -> None:
    with open("/dev/full", "wb") as full:
        for args in (("read", area, "--slot", "0"), ("info", area, "--json")):
            proc = subprocess.run(
                [*SWAPIO, *args], stdout=full, stderr=subprocess.PIPE, timeout=60, check=False
            )
            assert proc.returncode == 1, proc.stderr
            assert proc.stderr.decode().startswith("swapio: error: cannot write output")
            assert b"Traceback" not in proc.stderr


def test_closed_stdout_is_one_line_error(area: str) -> None:
    for args in (("read", area, "--slot", "0"), ("info", area, "--json")):
        cmd = " ".join([*SWAPIO, *args])
        proc = subprocess.run(
            f"{cmd} >&-", shell=True, stderr=subprocess.PIPE, timeout=60, check=False
        )
        assert proc.returncode == 1, proc.stderr
        assert b"stdout is closed" in proc.stderr
        assert b"Traceback" not in proc.stderr


def test_huge_create_is_refused_cleanly(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/huge.swap"
    assert_one_line_error(run("create", url, "--pages", "99999999999999999999"), 3, "free")
    assert not (tmp_path / "huge.swap").exists()
    assert run("create", url, "--pages", "4").returncode == 0


def test_immutable_file_can_be_read_but_not_written(tmp_path: Path) -> None:
    path = tmp_path / "ro.swap"
    path.write_bytes(page_pattern(0, 0, 4096))
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        url = f"file://{path}"
        assert json.loads(run("info", url, "--json").stdout)["capabilities"]["read_only"]
        assert run("read", url, "--slot", "0").stdout == page_pattern(0, 0, 4096)
        assert_one_line_error(run("write", url, "--slot", "0", stdin=bytes(4096)), 3, "read-only")
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    assert path.read_bytes() == page_pattern(0, 0, 4096)


def test_create_takes_the_page_size_from_the_url_when_none_is_given(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/p.swap?page_size=8192"
    assert run("create", url, "--pages", "4").returncode == 0
    assert (tmp_path / "p.swap").stat().st_size == 4 * 8192
    doc = json.loads(run("info", url, "--json").stdout)
    assert doc["page_size"] == 8192


def test_create_with_a_page_size_other_than_the_urls_is_one_line_error(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/p.swap?page_size=8192"
    proc = run("create", url, "--pages", "4", "--page-size", "4096")
    assert_one_line_error(proc, 2, "page_size=8192")
    assert not (tmp_path / "p.swap").exists()
