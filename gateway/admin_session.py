"""Admin sessions: a signed cookie naming the operator, with its CSRF token.

The cookie is `operator|expiry|csrf|signature` (HMAC-SHA256 with the gateway's secret),
HttpOnly and SameSite=Strict. Every form carries the session's CSRF token and every POST
is refused unless it matches, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

COOKIE = "citygate_admin"
LOGIN_COOKIE = "citygate_login"
LIFETIME = 8 * 3600


@dataclass(frozen=True)
class AdminSession:
    operator: str
    csrf: str


def _mac(secret: bytes, payload: str) -> str:
    return hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()


def issue(secret: bytes, operator: str, now: float | None = None) -> str:
    expiry = int((now or time.time()) + LIFETIME)
    payload = f"{operator}|{expiry}|{secrets.token_urlsafe(24)}"
    return f"{payload}|{_mac(secret, payload)}"


def read(secret: bytes, cookie: str | None, now: float | None = None) -> AdminSession | None:
    """The session in a cookie, if its signature is right and it has not expired."""
    if not cookie or cookie.count("|") != 3:
        return None
    operator, expiry, csrf, mac = cookie.split("|")
    if not hmac.compare_digest(_mac(secret, f"{operator}|{expiry}|{csrf}"), mac):
        return None
    if not expiry.isdigit() or int(expiry) < (now or time.time()):
        return None
    return AdminSession(operator, csrf)


def csrf_ok(expected: str | None, given: str | None) -> bool:
    return bool(expected and given) and hmac.compare_digest(
        str(expected).encode(), str(given).encode()
    )
