"""Secrets out of broker URLs: the one function every printed URL goes through.

redis-py takes a password in three places, and each is masked:

- the user-info part: `redis://user:pw@host`, `redis://:pw@host`,
  `rediss://...`, `unix://user:pw@/path/redis.sock`;
- a query parameter: `?password=pw` (also `ssl_password=`, and any other
  parameter whose name says password, secret or token);
- a lone user-info word, `redis://pw@host`, which some clients read as a
  password: masked too, unless the query carries the password (then it is a
  user name, kept).

The same rules cover the multi-host forms (`redis+cluster://user:pw@h1:p,h2:p`,
`redis+sentinel://:pw@s1:p,s2:p/service?sentinel_password=pw2`): the user-info
is everything before the last `@`, and `sentinel_password` is a query
parameter whose name says password. tests/test_redis_urls.py holds examples.

A password with an unescaped `/`, `?` or `#` is not a valid URL part, but an
operator pastes one anyway: the user-info is taken up to the last `@` before
the query, so such a password is masked whole, never cut at that character.
"""

from __future__ import annotations

import re

MASK = "***"
_SECRET_PARAM = re.compile(r"pass|secret|token", re.IGNORECASE)


def redact_url(url: str) -> str:
    """`url` with every password it carries replaced by `***`; anything that
    is not a URL (no `://`) is returned as is."""
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    authority, query = _split_query(rest)
    query, secret_in_query = _redact_query(query)
    if "@" in authority:
        creds, host = authority.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":" + MASK
        elif not secret_in_query:
            creds = MASK
        authority = f"{creds}@{host}"
    return f"{scheme}://{authority}{query}"


def _split_query(rest: str) -> tuple[str, str]:
    """(everything before the query, `?query` or ""). The query starts at the
    first `?` after the last `@` (a `?` before it belongs to the password),
    unless that `@` sits in a `name=value` pair of the query itself."""
    at = rest.rfind("@")
    mark = rest.find("?")
    if at != -1 and mark != -1 and mark < at and "=" in rest[mark:at]:
        at = rest.rfind("@", 0, mark)  # the `@` is inside a query value
    start = rest.find("?", at + 1 if at != -1 else 0)
    if start == -1:
        return rest, ""
    return rest[:start], rest[start:]


def _redact_query(query: str) -> tuple[str, bool]:
    if not query:
        return query, False
    found = False
    parts = []
    for pair in query[1:].split("&"):
        name, eq, _ = pair.partition("=")
        if eq and _SECRET_PARAM.search(name):
            pair, found = f"{name}={MASK}", True
        parts.append(pair)
    return "?" + "&".join(parts), found
