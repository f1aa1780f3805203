"""Every Redis URL form parses into what it says; each malformed one is one
clear ConfigError that names the problem and never shows a password."""

from __future__ import annotations

import pytest

from bananas.brokers import from_url
from bananas.brokers.redis.urls import CLUSTER, SENTINEL, STANDALONE, UNIX, parse
from bananas.config import Settings
from bananas.errors import ConfigError
from bananas.redact import redact_url

SECRET = "s3cr3t-pw"


def test_a_plain_url() -> None:
    u = parse(f"redis://alice:{SECRET}@db.internal:6380/3")
    assert (u.kind, u.nodes, u.username, u.password, u.db, u.tls) == (
        STANDALONE,
        (("db.internal", 6380),),
        "alice",
        SECRET,
        3,
        False,
    )
    assert parse("redis://").nodes == (("localhost", 6379),)
    assert parse("redis://h?db=2").db == 2
    assert parse("rediss://h").tls is True
    assert parse("redis://[::1]:7000").nodes == (("::1", 7000),)


def test_a_unix_socket_url() -> None:
    u = parse("unix:///run/redis/redis.sock?db=4")
    assert (u.kind, u.path, u.db, u.nodes) == (UNIX, "/run/redis/redis.sock", 4, ())


def test_a_cluster_url() -> None:
    u = parse(f"rediss+cluster://:{SECRET}@10.0.0.1:7000,10.0.0.2:7001,10.0.0.3")
    assert u.kind == CLUSTER and u.tls
    assert u.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 7001), ("10.0.0.3", 6379))
    assert (u.username, u.password, u.db, u.service_name) == (None, SECRET, 0, None)
    assert parse("redis+cluster://h:1/").db == 0
    assert parse("redis+cluster://h:1/?socket_timeout=2").connection_options() == {
        "socket_timeout": 2.0
    }


def test_a_sentinel_url() -> None:
    u = parse(
        f"redis+sentinel://app:{SECRET}@s1:26379,s2:26380,s3/mymaster/2"
        "?sentinel_password=sentinel-pw&sentinel_username=watcher&socket_timeout=3"
    )
    assert u.kind == SENTINEL and not u.tls
    assert u.nodes == (("s1", 26379), ("s2", 26380), ("s3", 26379))
    assert (u.service_name, u.db, u.username, u.password) == ("mymaster", 2, "app", SECRET)
    assert (u.sentinel_username, u.sentinel_password) == ("watcher", "sentinel-pw")
    assert u.connection_options() == {"socket_timeout": 3.0}
    assert parse("rediss+sentinel://s1/m").connection_options() == {"ssl": True}
    assert SECRET not in repr(u) and "sentinel-pw" not in repr(u)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"memcached://:{SECRET}@h:1", "unknown scheme (allowed: redis://, rediss://, unix://"),
        (f"redis+cluster://:{SECRET}@", "no host"),
        (f"redis+sentinel://:{SECRET}@/mymaster", "no host"),
        (f"redis+cluster://:{SECRET}@h:1,,h:2", "an empty host"),
        (f"redis+cluster://:{SECRET}@h:1,h:70000", "bad port '70000' (allowed: 1 to 65535)"),
        (f"redis://:{SECRET}@h:port", "bad port 'port'"),
        (f"redis+sentinel://:{SECRET}@s1:26379,s2:26379", "no service name"),
        (f"redis+sentinel://:{SECRET}@s1:26379/", "no service name"),
        (f"redis+cluster://:{SECRET}@h:1/2", "only database 0"),
        (f"redis+cluster://:{SECRET}@h:1?db=3", "only database 0"),
        (f"redis+sentinel://:{SECRET}@s1/m/x", "database 'x' is not a number"),
        (f"redis+sentinel://:{SECRET}@s1/m/1/2", "the database number alone"),
        (f"redis://:{SECRET}@h1:1,h2:2", "for several use redis+cluster:// or redis+sentinel://"),
        (f"redis://:{SECRET}@h/zero", "database 'zero' is not a number"),
        (f"redis+cluster://:{SECRET}@h:1?sentinel_password=x", "for redis+sentinel:// URLs only"),
        (f"redis+sentinel://:{SECRET}@s1/m?sockettimeout=1", "unknown option 'sockettimeout'"),
        (f"unix://:{SECRET}@", "no socket path"),
    ],
)
def test_a_bad_url_is_one_clear_error_without_its_password(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(url)
    message = str(caught.value)
    assert says in message, message
    assert SECRET not in message and "***" in message, message
    assert "\n" not in message
    with pytest.raises(ConfigError) as again:  # the same line from where the broker is made
        from_url(url)
    assert SECRET not in str(again.value)


def test_a_bad_option_value_is_named() -> None:
    u = parse(f"redis+sentinel://:{SECRET}@s1/m?socket_timeout=soon")
    with pytest.raises(ConfigError, match="option socket_timeout='soon' is invalid") as caught:
        u.connection_options()
    assert SECRET not in str(caught.value)


def test_the_settings_take_the_new_schemes_and_refuse_bad_ones() -> None:
    for url in ("redis+cluster://h:1,h:2", "rediss+sentinel://s1:26379/mymaster"):
        assert Settings.load({"REDIS_URL": url}).broker_url == url
    with pytest.raises(ConfigError, match="no service name") as caught:
        Settings.load({"REDIS_URL": f"redis+sentinel://:{SECRET}@s1:26379"})
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"redis+cluster://app:{SECRET}@h1:7000,h2:7001,h3:7002",
            "redis+cluster://app:***@h1:7000,h2:7001,h3:7002",
        ),
        (
            f"rediss+sentinel://:{SECRET}@s1:26379,s2:26379/mymaster/0"
            "?sentinel_password=other-secret&sentinel_username=watcher",
            "rediss+sentinel://:***@s1:26379,s2:26379/mymaster/0"
            "?sentinel_password=***&sentinel_username=watcher",
        ),
        (
            "redis+sentinel://s1:26379/mymaster?sentinel_password=other-secret",
            "redis+sentinel://s1:26379/mymaster?sentinel_password=***",
        ),
    ],
)
def test_multi_host_urls_are_redacted(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_cluster_url_selects_the_partitioned_broker() -> None:
    from bananas.brokers.redis.partitioned import PartitionedBroker

    broker = from_url("redis+cluster://:pw@127.0.0.1:1,127.0.0.1:2")
    assert isinstance(broker, PartitionedBroker)
    assert broker.cluster_url.seeds == (("127.0.0.1", 1), ("127.0.0.1", 2))
    assert "pw" not in broker.describe()


def test_a_refused_connection_is_told_apart_from_a_lost_one() -> None:
    """A connect that fails means the call was never sent (the partitioned
    fetch skips that partition); any other unavailability may have run it."""
    import redis
    from support import free_port

    from bananas.brokers.redis.connection import redis_errors
    from bananas.errors import BrokerNotReached, BrokerUnavailable

    client = redis.Redis(port=free_port(), socket_connect_timeout=1, retry=None)
    with pytest.raises(BrokerNotReached), redis_errors():
        client.ping()
    with pytest.raises(BrokerUnavailable) as lost, redis_errors():
        raise redis.ConnectionError("Connection closed by server.")
    assert not isinstance(lost.value, BrokerNotReached)
