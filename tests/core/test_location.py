from __future__ import annotations

import pytest

from swapio.area import CreateRequest
from swapio.errors import LocationError, PageSizeError, UsageError
from swapio.location import Location, area_page_size, url_page_size


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
        ("file:///tmp/a%00b", "NUL byte"),
        ("nfs://h/export/x?timeo=1%00", "NUL byte"),
        ("http://[::1/areas/x", "Invalid IPv6 URL"),
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


# --- the page-size rule (swapio.location.area_page_size) --------------------------------


def test_opening_without_a_url_page_size_uses_the_default() -> None:
    assert area_page_size(Location.parse("file:///x"), None) == 4096


def test_opening_uses_the_url_page_size() -> None:
    assert area_page_size(Location.parse("nfs://h/e/f?page_size=8192"), None) == 8192


@pytest.mark.parametrize("size", ["1000", "256", str(2 << 20)])
def test_a_url_page_size_that_is_not_a_power_of_two_in_range_is_refused(size: str) -> None:
    with pytest.raises(PageSizeError, match=size):
        area_page_size(Location.parse(f"file:///x?page_size={size}"), None)


def test_creating_without_a_url_page_size_uses_the_requested_one() -> None:
    assert area_page_size(Location.parse("file:///x"), CreateRequest(4, 16384)) == 16384


def test_creating_with_the_same_url_page_size_is_accepted() -> None:
    loc = Location.parse("file:///x?page_size=512")
    assert area_page_size(loc, CreateRequest(4, 512)) == 512


def test_creating_with_a_different_url_page_size_names_both() -> None:
    loc = Location.parse("flashlog:///img?page_size=8192")
    with pytest.raises(UsageError, match=r"page size 4096 .* page_size=8192"):
        area_page_size(loc, CreateRequest(4, 4096))


def test_url_page_size_is_none_when_the_url_names_none() -> None:
    assert url_page_size(Location.parse("file:///x?durable=1")) is None
