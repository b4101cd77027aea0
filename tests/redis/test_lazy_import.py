"""Loading the redis plugin does not import redis-py: only activating a redis area does."""

from __future__ import annotations

from tests.cli.imports import run_swapio


def test_loading_the_redis_plugin_does_not_import_redis_py() -> None:
    # `backends --check` imports every plugin and asks it for its backend
    code, listing, err, modules = run_swapio("backends", "--check")
    assert code == 0, err
    assert "redis+cluster" in listing
    assert "swapio_redis.plugin" in modules  # the plugin was loaded ...
    assert sorted(m for m in modules if m == "redis" or m.startswith("redis.")) == []  # ... alone
