from __future__ import annotations

import pytest

from swapio.errors import LocationError
from swapio.location import Location


def test_parses_nfs_url_with_ports() -> None:
    loc = Location.parse("nfs://127.0.0.1/srv/export/swap?nfsport=20490&mountport=20491")
    assert (loc.scheme, loc.host, loc.path) == ("nfs", "127.0.0.1", "/srv/export/swap")
    assert loc.query_int("nfsport") == 20490


def test_file_path_is_percent_decoded() -> None:
    assert Location.parse("file:///tmp/a%20b").path == "/tmp/a b"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("", "empty"),
        ("/tmp/x", "no scheme"),
        ("1abc://x", "invalid scheme"),
        ("nfs://h:99999/x", "port"),
        ("nfs://h:abc/x", "port"),
        ("file:///x?a=1&a=2", "given twice"),
        ("file:///x#frag", "fragment"),
        ("file:///x\n", "control"),
    ],
)
def test_malformed_urls_are_rejected_precisely(url: str, fragment: str) -> None:
    with pytest.raises(LocationError, match=fragment):
        Location.parse(url)


def test_query_helpers_reject_garbage() -> None:
    loc = Location.parse("file:///x?page_size=abc&durable=maybe")
    with pytest.raises(LocationError, match="not an integer"):
        loc.query_int("page_size")
    with pytest.raises(LocationError, match="not a boolean"):
        loc.query_bool("durable")


def test_unknown_parameters_are_named() -> None:
    loc = Location.parse("file:///x?pagesize=4096")
    with pytest.raises(LocationError, match="pagesize"):
        loc.check_query({"page_size"})
