"""Webhook bodies as Twilio sends them, each signed with twilio's RequestValidator.

Every body gets its own MessageSid (a repeated one would only replay the stored reply)
and its own signature, computed over the public URL and the parameters exactly as
Twilio computes it. Bodies go to a Lua table file for wrk and to JSON lines for the
open-loop generator.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

AUTH_TOKEN = "bench-auth-token-0123456789abcdef"  # noqa: S105 - a made-up token the bench servers run with
OPERATOR_TOKEN = "bench-operator-token-0123456789abcdef"  # noqa: S105 - a made-up token
PUBLIC_URL = "https://gateway.bench.example"
PATH = "/sms/twilio"
SIGNED_URL = PUBLIC_URL + PATH
SENDERS = 256  # distinct phone numbers the load comes from (more than any connection count)
LUA_CHUNK = 1000  # strings per Lua function (LuaJIT limits constants per function)

_tags = itertools.count(1)
_validator = RequestValidator(AUTH_TOKEN)


class Signed(NamedTuple):
    body: str  # application/x-www-form-urlencoded
    signature: str  # X-Twilio-Signature


def new_tag() -> int:
    """A number no earlier batch of this process used: it goes into the MessageSids."""
    return next(_tags)


def sms_params(text: str, sender: str, sid: str) -> dict[str, str]:
    """An inbound SMS webhook's parameters, in the order Twilio sends them."""
    return {
        "ToCountry": "IR",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": text,
        "To": "+982100000000",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }


def sign(params: dict[str, str]) -> Signed:
    signature = _validator.compute_signature(SIGNED_URL, params)
    return Signed(urlencode(params), str(signature))


def phone(n: int) -> str:
    return f"+98912{n % 10_000_000:07d}"


def webhook_text(i: int, code: str, pin: str) -> str:
    """Half HELP, half STATUS of the existing case (every other one with its PIN)."""
    if i % 2 == 0:
        return "HELP"
    return f"STATUS {code}" if i % 4 == 1 else f"STATUS {code} {pin}"


def webhook_bodies(n: int, code: str, pin: str) -> list[Signed]:
    """`n` signed bodies with MessageSids unique in this process, from SENDERS numbers."""
    tag = new_tag()
    bodies = []
    for i in range(n):
        sid = f"SM{tag:08x}{i:024x}"
        bodies.append(sign(sms_params(webhook_text(i, code, pin), phone(i % SENDERS), sid)))
    return bodies


def write_lua(bodies: list[Signed], path: Path) -> None:
    """A Lua file returning {body1, signature1, body2, signature2, ...}."""
    with path.open("w", encoding="ascii") as f:
        f.write("local t = {}\nlocal function add(a) for i = 1, #a do t[#t + 1] = a[i] end end\n")
        for start in range(0, len(bodies), LUA_CHUNK):
            f.write("add((function() return {\n")
            for signed in bodies[start : start + LUA_CHUNK]:
                for value in signed:
                    if '"' in value or "\\" in value or "\n" in value:
                        raise ValueError(f"cannot quote {value!r} for Lua")
                    f.write(f'"{value}",\n')
            f.write("} end)())\n")
        f.write("return t\n")


def write_jsonl(bodies: list[Signed], path: Path) -> None:
    with path.open("w", encoding="ascii") as f:
        for signed in bodies:
            f.write(json.dumps({"b": signed.body, "s": signed.signature}) + "\n")


def read_jsonl(path: Path) -> list[Signed]:
    with path.open(encoding="ascii") as f:
        return [Signed(d["b"], d["s"]) for d in map(json.loads, f)]
