"""The cache's Redis URL is the broker's with database 1: every other part of the URL survives."""

import pytest
from redis.connection import ConnectionPool

from trialsite.settings.base import _cache_url

CASES = [
    # (broker URL, cache URL)
    ("redis://redis:6379", "redis://redis:6379/1"),  # no database: was "redis:/1" (host "1")
    ("redis://redis:6379/0", "redis://redis:6379/1"),
    ("redis://redis", "redis://redis/1"),
    ("redis://127.0.0.1:6380/5", "redis://127.0.0.1:6380/1"),
    ("redis://:s3cret@redis:6379/0", "redis://:s3cret@redis:6379/1"),
    ("redis://user:p%2Fw@redis:6379/0", "redis://user:p%2Fw@redis:6379/1"),
    (
        "rediss://redis.example.org:6380/0?ssl_cert_reqs=required",
        "rediss://redis.example.org:6380/1?ssl_cert_reqs=required",
    ),
    (
        "redis://redis:6379/0?socket_timeout=2&health_check_interval=10",
        "redis://redis:6379/1?socket_timeout=2&health_check_interval=10",
    ),
    ("redis://redis:6379?db=0&socket_timeout=2", "redis://redis:6379/1?socket_timeout=2"),
    ("unix:///run/redis/redis.sock?db=0", "unix:///run/redis/redis.sock?db=1"),
    ("unix:///run/redis/redis.sock", "unix:///run/redis/redis.sock?db=1"),
    ("memcached://cache:11211", "memcached://cache:11211"),  # not Redis: untouched
]


@pytest.mark.parametrize(("broker", "expected"), CASES)
def test_cache_url(broker, expected):
    assert _cache_url(broker) == expected


@pytest.mark.parametrize(("broker", "expected"), [c for c in CASES if not c[0].startswith("memcached")])
def test_redis_client_reads_the_cache_url_as_meant(broker, expected):
    """What redis-py (Django's RedisCache) makes of the URL: same server and options, database 1."""

    def options(url):
        pool = ConnectionPool.from_url(url)
        plain = {k: v for k, v in pool.connection_kwargs.items() if isinstance(v, str | int | float | type(None))}
        return pool.connection_class.__name__, plain

    broker_class, broker_options = options(broker)
    cache_class, cache_options = options(_cache_url(broker))
    assert cache_options.pop("db") == 1
    broker_options.pop("db", None)
    assert (cache_class, cache_options) == (broker_class, broker_options)
    assert cache_options.get("host", cache_options.get("path"))
