"""Redis URLs: every form Bananas takes, parsed and checked before anything
connects, so a mistyped URL is one clear line naming what is wrong.

    redis://[user:pass@]host[:port][/db]          one server
    rediss://...                                  the same over TLS
    unix://[user:pass@]/path/redis.sock[?db=N]    a local socket
    redis+cluster://[user:pass@]h:p[,h:p...]      Redis Cluster (seed nodes)
    rediss+cluster://...                          over TLS
    redis+sentinel://[user:pass@]h:p[,h:p...]/service_name[/db]
    rediss+sentinel://...                         over TLS (sentinels and primary)

The user-info is the primary's (or every cluster node's) credentials; the
sentinels' own go in the query: `?sentinel_password=...&sentinel_username=...`.
Other query options are redis-py's connection options (`socket_timeout`,
`ssl_cert_reqs`, ...). Every error message shows the URL redacted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qsl, unquote

from redis.connection import URL_QUERY_ARGUMENT_PARSERS

from ...errors import ConfigError
from ...redact import redact_url

STANDALONE, UNIX, CLUSTER, SENTINEL = "standalone", "unix", "cluster", "sentinel"
SCHEMES: dict[str, tuple[str, bool]] = {
    "redis": (STANDALONE, False),
    "rediss": (STANDALONE, True),
    "unix": (UNIX, False),
    "redis+cluster": (CLUSTER, False),
    "rediss+cluster": (CLUSTER, True),
    "redis+sentinel": (SENTINEL, False),
    "rediss+sentinel": (SENTINEL, True),
}
ALLOWED_SCHEMES = ", ".join(f"{s}://" for s in SCHEMES)
DEFAULT_PORT = {STANDALONE: 6379, CLUSTER: 6379, SENTINEL: 26379}
SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")
# Options redis-py's own URL parser passes through as text (TLS files and modes).
TEXT_OPTIONS = (
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_ca_path",
    "ssl_ca_data",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_password",
    "client_name",
)
FORM = {
    STANDALONE: "redis://[user:password@]host[:port][/db]",
    UNIX: "unix://[user:password@]/path/to/redis.sock[?db=N]",
    CLUSTER: "redis+cluster://[user:password@]host:port[,host:port...]",
    SENTINEL: "redis+sentinel://[user:password@]host:port[,host:port...]/service_name[/db]",
}


@dataclass(frozen=True)
class RedisURL:
    """A checked Redis URL. Secrets are kept out of repr()."""

    kind: str  # standalone, unix, cluster, sentinel
    nodes: tuple[tuple[str, int], ...]  # the server, the seed nodes, or the sentinels
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    db: int = 0
    service_name: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    tls: bool = False
    path: str | None = None  # the socket of a unix:// URL
    options: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    redacted: str = ""

    def connection_options(self) -> dict[str, Any]:
        """The query options as redis-py connection keyword arguments (typed
        as redis-py's own URL parser types them); `ssl=True` for TLS."""
        out: dict[str, Any] = {"ssl": True} if self.tls else {}
        for name, value in self.options:
            parser = cast("Callable[[str], Any] | None", URL_QUERY_ARGUMENT_PARSERS.get(name))
            try:
                out[name] = parser(value) if parser is not None else value
            except (TypeError, ValueError):
                raise ConfigError(
                    f"Redis URL {self.redacted!r}: option {name}={value!r} is invalid"
                ) from None
        return out


def parse(url: str) -> RedisURL:
    """Check `url` and take it apart; ConfigError naming the problem (the URL
    redacted) and the allowed form."""
    shown = redact_url(url)
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise ConfigError(f"Redis URL {shown!r} has an unknown scheme (allowed: {ALLOWED_SCHEMES})")
    kind, tls = SCHEMES[scheme.lower()]

    def bad(problem: str) -> ConfigError:
        return ConfigError(f"Redis URL {shown!r}: {problem} (the form: {FORM[kind]})")

    before_query, query = _split_query(rest)
    creds, at, location = before_query.rpartition("@")
    if not at:
        creds, location = "", before_query
    username, password = _credentials(creds)
    hosts, slash, path = location.partition("/")
    options, extra = _query(query, kind, bad)

    if kind == UNIX:
        if not path:
            raise bad("no socket path")
        return RedisURL(
            UNIX,
            (),
            username,
            password,
            db=_db(extra.get("db", "0"), bad),
            tls=tls,
            path="/" + unquote(path),
            options=options,
            redacted=shown,
        )

    nodes = _nodes(hosts, DEFAULT_PORT[kind], bad, allow_empty=kind == STANDALONE)
    service: str | None = None
    db_text = extra.get("db")
    segments = [unquote(s) for s in path.split("/")] if slash else []
    if segments and segments[-1] == "":
        segments.pop()  # a trailing slash
    if kind == STANDALONE:
        if len(nodes) > 1:
            raise bad(
                "several hosts on a plain Redis URL; for several use "
                "redis+cluster:// or redis+sentinel://"
            )
        if len(segments) > 1:
            raise bad("the path is the database number alone")
        db_text = db_text or (segments[0] if segments and segments[0] else None)
    elif kind == CLUSTER:
        if any(segments) or db_text not in (None, "0"):
            raise bad("Redis Cluster has only database 0: remove the database from the URL")
        db_text = None
    else:
        if not segments or not segments[0]:
            raise bad("no service name: name the primary the sentinels monitor")
        service = segments[0]
        if len(segments) > 2:
            raise bad("after the service name comes the database number alone")
        if len(segments) == 2:
            db_text = segments[1]
    return RedisURL(
        kind,
        nodes,
        username,
        password,
        db=_db(db_text or "0", bad),
        service_name=service,
        sentinel_username=extra.get("sentinel_username"),
        sentinel_password=extra.get("sentinel_password"),
        tls=tls,
        options=options,
        redacted=shown,
    )


def _split_query(rest: str) -> tuple[str, str]:
    """(before the query, the query without `?`): the query starts at the first
    `?` after the last `@` (a `?` in an unescaped password stays in it)."""
    at = rest.rfind("@")
    start = rest.find("?", at + 1)
    return (rest, "") if start == -1 else (rest[:start], rest[start + 1 :])


def _credentials(creds: str) -> tuple[str | None, str | None]:
    if not creds:
        return None, None
    user, colon, password = creds.partition(":")
    if not colon:
        # `redis://secret@host`: redis-py reads a lone word as the user name
        return unquote(user) or None, None
    return unquote(user) or None, unquote(password) or None


def _nodes(
    hosts: str, default_port: int, bad: Callable[[str], ConfigError], allow_empty: bool
) -> tuple[tuple[str, int], ...]:
    if not hosts:
        if allow_empty:
            return (("localhost", default_port),)  # what redis-py assumes
        raise bad("no host: give at least one host:port")
    nodes = []
    for entry in hosts.split(","):
        entry = entry.strip()
        if not entry:
            raise bad("an empty host in the list (two commas?)")
        if entry.startswith("["):  # an IPv6 literal: [::1]:6379
            host, close, tail = entry[1:].partition("]")
            if not close or (tail and not tail.startswith(":")):
                raise bad(f"host {entry!r} is not [ipv6]:port")
            port_text = tail[1:] if tail else ""
        else:
            host, _, port_text = entry.rpartition(":") if ":" in entry else (entry, "", "")
        if not host:
            raise bad(f"host {entry!r} has no name")
        nodes.append((unquote(host), _port(port_text, default_port, entry, bad)))
    return tuple(nodes)


def _port(text: str, default: int, entry: str, bad: Callable[[str], ConfigError]) -> int:
    if text == "":
        return default
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise bad(f"host {entry!r} has a bad port {text!r} (allowed: 1 to 65535)")
    return int(text)


def _db(text: str, bad: Callable[[str], ConfigError]) -> int:
    if not text.isdigit():
        raise bad(f"database {text!r} is not a number")
    return int(text)


def _query(
    query: str, kind: str, bad: Callable[[str], ConfigError]
) -> tuple[tuple[tuple[str, str], ...], dict[str, str]]:
    """(plain connection options, the ones parse() reads itself: db and the
    sentinel credentials)."""
    allowed = {*URL_QUERY_ARGUMENT_PARSERS, *TEXT_OPTIONS}
    options: list[tuple[str, str]] = []
    extra: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in SENTINEL_OPTIONS:
            if kind != SENTINEL:
                raise bad(f"{name} is for redis+sentinel:// URLs only")
            extra[name] = value
        elif name == "db":
            extra[name] = value
        elif kind in (CLUSTER, SENTINEL) and name not in allowed:
            own = list(SENTINEL_OPTIONS) if kind == SENTINEL else []
            names = ", ".join([*sorted(allowed - {"db"}), *own])
            raise bad(f"unknown option {name!r} (allowed: {names})")
        else:
            options.append((name, value))
    return tuple(options), extra
