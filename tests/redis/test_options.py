"""Redis area URLs, credentials and the key layout (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.crc import key_slot
from swapio_redis._layout import HASH_SLOTS, STRIPE_PAGES, STRIPES, Layout, Meta, runs_by_hash_slot
from swapio_redis._options import credentials_from_env, parse_options, redact

from swapio.errors import AreaFormatError, LocationError, UsageError
from swapio.location import Location


def opts(url: str):  # type: ignore[no-untyped-def]
    return parse_options(Location.parse(url))


def test_standalone_url_with_database() -> None:
    o = opts("redis://cache.example:6380/3?prefix=swap1&durable=1&replicas=2")
    assert (o.cluster, o.nodes, o.db, o.prefix, o.durable, o.replicas) == (
        False, (("cache.example", 6380),), 3, "swap1", True, 2,
    )  # fmt: skip


def test_cluster_url_lists_every_seed() -> None:
    o = opts("redis+cluster://10.0.0.1:7000,10.0.0.2,[::1]:7002?prefix=p")
    assert o.cluster
    assert o.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002))


def test_tls_url_takes_a_ca_file() -> None:
    o = opts("rediss://h:6380?prefix=p&cafile=/etc/ca.pem")
    assert (o.tls, o.cafile) == (True, "/etc/ca.pem")


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("redis://h", "prefix=NAME is required"),
        ("redis://h?prefix=a/b", "must be 1-100 characters"),
        ("redis://h?prefix={x}", "must be 1-100 characters"),
        ("redis://h/16?prefix=p", "database number"),
        ("redis+cluster://a:1,b:2/1?prefix=p", "only database 0"),
        ("redis://a:1,b:2?prefix=p", "redis+cluster://"),
        ("redis://h?prefix=p&replicas=1", "only applies with durable=1"),
        ("redis://h?prefix=p&cafile=/x", "only applies to rediss://"),
        ("redis://h?prefix=p&timeout=0", "timeout"),
        ("redis://h?prefix=p&frob=1", "unknown parameter"),
        ("redis+cluster://a:99999,b:1?prefix=p", "not in 1..65535"),
    ],
)
def test_bad_urls_are_refused(url: str, text: str) -> None:
    with pytest.raises(LocationError, match=text.replace("+", r"\+").replace("?", r"\?")):
        opts(url)


@pytest.mark.parametrize(
    "url",
    [
        "redis://:s3cr3t-pw@h?prefix=p",
        "redis://user:s3cr3t-pw@h?prefix=p",
        "redis+cluster://user:s3cr3t-pw@a:1,b:2?prefix=p",
        "redis://h?prefix=p&password=s3cr3t-pw",
    ],
)
def test_a_password_in_the_url_is_refused_without_repeating_it(url: str) -> None:
    with pytest.raises(LocationError) as info:
        opts(url)
    assert "s3cr3t-pw" not in str(info.value)
    assert "SWAPIO_REDIS_PASSWORD" in str(info.value)


def test_redact_hides_user_info() -> None:
    assert redact("redis://u:pw@h:1/0?prefix=p") == "redis://***@h:1/0?prefix=p"


def test_credentials_from_the_environment_or_a_file(tmp_path: Path) -> None:
    assert credentials_from_env({}).password is None
    assert credentials_from_env({"SWAPIO_REDIS_PASSWORD": "pw"}).password == "pw"
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    creds = credentials_from_env({"SWAPIO_REDIS_PASSWORD_FILE": str(secret)})
    assert creds.password == "from-file"
    assert "from-file" not in repr(creds)
    with pytest.raises(UsageError, match="not both"):
        credentials_from_env({"SWAPIO_REDIS_PASSWORD": "a", "SWAPIO_REDIS_PASSWORD_FILE": "b"})
    with pytest.raises(UsageError, match="cannot read"):
        credentials_from_env({"SWAPIO_REDIS_PASSWORD_FILE": str(tmp_path / "missing")})


def test_stripe_tags_are_spread_over_the_hash_slot_space() -> None:
    layout = Layout("anything-at-all")
    width = HASH_SLOTS // STRIPES
    assert [hs // width for hs in layout.stripe_hash_slots()] == list(range(STRIPES))


def test_keys_of_a_stripe_unit_share_a_hash_tag() -> None:
    layout = Layout("p")
    unit = [key_slot(layout.key(s)) for s in range(STRIPE_PAGES)]
    assert len(set(unit)) == 1
    assert key_slot(layout.key(STRIPE_PAGES)) != unit[0]
    assert key_slot(layout.key(STRIPES * STRIPE_PAGES)) == unit[0]  # the stripes repeat


def test_runs_split_at_stripe_unit_boundaries() -> None:
    layout = Layout("p")
    runs = [(first, n) for _, first, n in runs_by_hash_slot(layout, 10, 40)]
    assert runs == [(10, 6), (16, 16), (32, 16), (48, 2)]


def test_metadata_round_trips_and_refuses_foreign_records() -> None:
    meta = Meta(pages=100, page_size=4096)
    assert Meta.decode(meta.encode(), "w") == meta
    with pytest.raises(AreaFormatError, match="foreign data"):
        Meta.decode(b"not json", "w")
    with pytest.raises(AreaFormatError, match="format version 9"):
        Meta.decode(b'{"format":"swapio-redis","version":9}', "w")
    with pytest.raises(AreaFormatError, match="damaged"):
        Meta.decode(b'{"format":"swapio-redis","version":1,"pages":-1}', "w")


def test_ops_group_keys_by_hash_slot_on_a_cluster_only() -> None:
    from swapio_redis._ops import Kind, build_ops

    layout = Layout("p")
    items = [(s, None) for s in (0, 16, 1, 17, 2)]
    cluster = build_ops(layout, True, Kind.DEL, items)
    assert [op.slots for op in cluster] == [[0, 1, 2], [16, 17]]
    assert all(len({key_slot(k) for k in op.keys}) == 1 for op in cluster)
    single = build_ops(layout, False, Kind.DEL, [(s, None) for s in range(40)])
    assert [len(op.keys) for op in single] == [16, 16, 8]  # 16 keys per command at most


def test_slot_map_routes_hash_slots_by_range() -> None:
    from swapio_redis._net import SlotMap

    reply = [
        [5461, 10922, [b"10.0.0.2", 7001, b"id2"], [b"10.0.0.5", 7004, b"id5"]],
        [0, 5460, [b"", 7000, b"id1"]],  # a node that does not know its address
        [10923, 16383, [b"10.0.0.3", 7002, b"id3"], [b"a", 1, b"x"], [b"b", 2, b"y"]],
    ]
    slots = SlotMap.parse(reply, "seed.example")
    assert slots.covered == 16384
    assert slots.master_of(0) == ("seed.example", 7000)
    assert slots.master_of(5461) == ("10.0.0.2", 7001)
    assert slots.master_of(16383) == ("10.0.0.3", 7002)
    assert slots.replicas == (0, 1, 2)
    partial = SlotMap.parse(reply[:1], "s")
    assert partial.master_of(0) is None
    assert partial.covered == 5462
