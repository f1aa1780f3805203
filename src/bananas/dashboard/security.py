"""Authentication, CSRF protection and security headers, as one ASGI middleware.

Authentication (only when a token or user/password is configured), any one of:
- `Authorization: Bearer <token>` (scripts, the JSON API);
- a session cookie (HttpOnly, SameSite=Lax, signed, 12 h) set by the login
  form or by opening any page once with `?token=<token>`;
- HTTP Basic with the configured user and password.

CSRF: every state-changing request must be a POST carrying the CSRF token, in
the `csrf_token` form field or the `X-CSRF-Token` header. The token is an HMAC
of a random nonce kept in its own HttpOnly cookie (a signed double submit), so
a page on another site can neither read nor forge it. A request authenticated
with a Bearer header is exempt: browsers never add that header by themselves.
Cross-origin POSTs (an `Origin` that is not this host) are refused outright.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.datastructures import URL, Headers
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import DashboardConfig

SESSION_COOKIE = "bananas_dashboard_session"
CSRF_COOKIE = "bananas_dashboard_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SESSION_MAX_AGE = 12 * 3600
MAX_BODY = 1024 * 1024
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

LoginRenderer = Callable[[Scope, int, str], Awaitable[Response]]


def root_path(scope: Scope) -> str:
    return str(scope.get("root_path", "")).rstrip("/")


def route_path(scope: Scope) -> str:
    """The path inside the dashboard (what its routes match)."""
    path = str(scope["path"])
    root = root_path(scope)
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root) :]
    return path or "/"


class Secrets:
    """The keys of the session and CSRF signatures. Derived from the configured
    credentials (so they survive restarts and agree across processes), else
    random per process."""

    def __init__(self, config: DashboardConfig) -> None:
        self.config = config
        if config.auth_required:
            material = "\0".join(
                [
                    "bananas-dashboard-v1",
                    config.token or "",
                    config.username or "",
                    config.password or "",
                ]
            )
            self.key = hashlib.sha256(material.encode()).digest()
        else:
            self.key = secrets.token_bytes(32)

    def sign(self, purpose: str, value: str) -> str:
        mac = hmac.new(self.key, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    # -- sessions -------------------------------------------------------------
    def new_session(self) -> str:
        issued = str(int(time.time()))
        return f"{issued}.{self.sign('session', issued)}"

    def valid_session(self, value: str | None) -> bool:
        if not value or "." not in value:
            return False
        issued, mac = value.split(".", 1)
        if not issued.isdigit() or not _same(mac, self.sign("session", issued)):
            return False
        return 0 <= time.time() - int(issued) <= SESSION_MAX_AGE

    # -- credentials ------------------------------------------------------------
    def check_token(self, given: str | None) -> bool:
        return (
            self.config.token is not None and given is not None and _same(given, self.config.token)
        )

    def check_basic(self, header: str) -> bool:
        try:
            decoded = base64.b64decode(header, validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        return bool(sep) and self.check_user(user, password)

    def check_user(self, user: str, password: str) -> bool:
        if self.config.username is None or self.config.password is None:
            return False
        # Both compared, always, so timing tells nothing about which one was wrong.
        ok_user = _same(user, self.config.username)
        ok_password = _same(password, self.config.password)
        return ok_user and ok_password


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class Guard:
    """The middleware: authenticates, checks CSRF, adds cookies and headers."""

    def __init__(
        self, app: ASGIApp, config: DashboardConfig, keys: Secrets, login: LoginRenderer
    ) -> None:
        self.app = app
        self.config = config
        self.keys = keys
        self.login = login

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        cookies = _cookies(headers.get("cookie", ""))
        nonce = cookies.get(CSRF_COOKIE, "")
        fresh_nonce = None
        if not (16 <= len(nonce) <= 64 and nonce.replace("-", "").replace("_", "").isalnum()):
            nonce = fresh_nonce = secrets.token_urlsafe(24)
        scope["bananas.csrf"] = self.keys.sign("csrf", nonce)
        path = route_path(scope)
        secure = scope.get("scheme") == "https"
        cookie_path = root_path(scope) + "/"
        extra: list[tuple[bytes, bytes]] = _security_headers(path)
        if fresh_nonce is not None:
            extra.append(_set_cookie(CSRF_COOKIE, fresh_nonce, cookie_path, secure, None))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        method = scope["method"]
        if path.startswith("/static/"):
            await self.app(scope, receive, send_with_headers)
            return
        how = self._authenticate(headers, cookies)
        scope["bananas.auth"] = how
        if self.config.auth_required and how is None:
            response = await self._unauthenticated(scope, headers, path, cookie_path, secure)
            if response is not None:
                await response(scope, receive, send_with_headers)
                return
        if method not in SAFE_METHODS and how != "bearer":
            refusal, receive = await self._check_csrf(scope, headers, receive)
            if refusal is not None:
                await refusal(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)

    def _authenticate(self, headers: Headers, cookies: dict[str, str]) -> str | None:
        if not self.config.auth_required:
            return "open"
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.keys.check_token(value.strip()):
            return "bearer"
        if scheme.lower() == "basic" and self.keys.check_basic(value.strip()):
            return "basic"
        if self.keys.valid_session(cookies.get(SESSION_COOKIE)):
            return "session"
        return None

    async def _unauthenticated(
        self, scope: Scope, headers: Headers, path: str, cookie_path: str, secure: bool
    ) -> Response | None:
        """The response refusing an unauthenticated request; None lets it through
        (the login form itself)."""
        method = scope["method"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if method in SAFE_METHODS and "token" in query:
            if self.keys.check_token(query["token"][0]):
                rest = [(k, v) for k, vs in query.items() if k != "token" for v in vs]
                target = root_path(scope) + path + (f"?{urlencode(rest)}" if rest else "")
                response: Response = RedirectResponse(target, status_code=303)
                response.raw_headers.append(
                    _set_cookie(
                        SESSION_COOKIE,
                        self.keys.new_session(),
                        cookie_path,
                        secure,
                        SESSION_MAX_AGE,
                    )
                )
                return response
            return await self._refuse(scope, headers, path, "the token is not valid")
        if path == "/login":
            return None
        return await self._refuse(scope, headers, path, "authentication required")

    async def _refuse(self, scope: Scope, headers: Headers, path: str, why: str) -> Response:
        challenge = []
        if self.config.token is not None:
            challenge.append('Bearer realm="bananas"')
        if self.config.username is not None:
            challenge.append('Basic realm="Bananas dashboard", charset="UTF-8"')
        if path.startswith("/api/") or "text/html" not in headers.get("accept", ""):
            response: Response = JSONResponse({"error": why}, status_code=401)
        else:
            response = await self.login(scope, 401, why)
        response.headers["WWW-Authenticate"] = ", ".join(challenge)
        return response

    async def _check_csrf(
        self, scope: Scope, headers: Headers, receive: Receive
    ) -> tuple[Response | None, Receive]:
        origin = headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != headers.get("host", ""):
            return _forbidden("cross-origin request refused"), receive
        if scope["method"] != "POST":
            return PlainTextResponse("method not allowed", status_code=405), receive
        body, receive = await _buffer(receive)
        if body is None:
            return PlainTextResponse("request body too large", status_code=413), receive
        expected = str(scope["bananas.csrf"])
        given = headers.get(CSRF_HEADER)
        if given is None and headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            values = parse_qs(body.decode("utf-8", "replace")).get(CSRF_FIELD)
            given = values[0] if values else None
        if given is None or not _same(given, expected):
            return _forbidden(
                "CSRF check failed: reload the page and try again (the form's token is "
                "missing or does not match this browser's cookie)"
            ), receive
        return None, receive


def _forbidden(message: str) -> Response:
    return PlainTextResponse(message, status_code=403)


async def _buffer(receive: Receive) -> tuple[bytes | None, Receive]:
    """Read the whole request body (bounded) and a receive that replays it."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None, receive
        chunks.append(chunk)
        more = bool(message.get("more_body", False))
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _cookies(header: str) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a malformed Cookie header is treated as no cookies
        return {}
    return {k: m.value for k, m in jar.items()}


def _set_cookie(
    name: str, value: str, path: str, secure: bool, max_age: int | None
) -> tuple[bytes, bytes]:
    parts = [f"{name}={value}", f"Path={path}", "HttpOnly", "SameSite=Lax"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return b"set-cookie", "; ".join(parts).encode("latin-1")


def clear_cookie(name: str, path: str) -> tuple[bytes, bytes]:
    return b"set-cookie", f"{name}=; Path={path}; Max-Age=0; HttpOnly; SameSite=Lax".encode()


def session_cookie(keys: Secrets, scope: Scope) -> tuple[bytes, bytes]:
    return _set_cookie(
        SESSION_COOKIE,
        keys.new_session(),
        root_path(scope) + "/",
        scope.get("scheme") == "https",
        SESSION_MAX_AGE,
    )


def _security_headers(path: str) -> list[tuple[bytes, bytes]]:
    out = [
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
    ]
    if not path.startswith("/static/"):
        out.append((b"cache-control", b"no-store"))
    return out


def safe_next(scope: Scope, target: str | None, default: str = "/") -> str:
    """A redirect target inside the dashboard (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        target = default
    url = URL(target)
    return root_path(scope) + url.path + (f"?{url.query}" if url.query else "")


def csrf_token(scope: Scope) -> str:
    return str(scope.get("bananas.csrf", ""))


__all__ = [
    "CSRF_FIELD",
    "Guard",
    "Secrets",
    "clear_cookie",
    "csrf_token",
    "route_path",
    "safe_next",
    "session_cookie",
]
