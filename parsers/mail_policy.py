"""The email policy every parse and render uses: `email.policy.default`, made cheaper.

Two costs of the standard library's header objects are cut, and nothing else changes:

- Its header registry builds a new class for every header it parses or stores
  (`HeaderRegistry.__getitem__` calls `type(...)` each time), an eighth of the email
  path's time. `CachedHeaderRegistry` builds each class once; the classes hold no
  state. The cache is keyed by the registry's classes, not by header names, so a mail
  with thousands of made-up header names cannot grow it.
- The policy parses a header again at every read (`Message.get`, `get_content_type`,
  `get_filename`...), and reading one mail read Content-Type and From several times
  each. `CachingPolicy` keeps the last `FETCHED` parsed headers by name and raw value
  (a header object cannot be changed, so one can be handed out twice). A parsed header
  is large (~28 KB for 256 characters: its parse tree), so values longer than
  `MAX_CACHED_VALUE` are parsed each time: the cache holds at most ~7 MB (measured with
  every entry at the limit), whatever the mail.
"""

from __future__ import annotations

import functools
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy
from typing import Any, cast


class CachedHeaderRegistry(HeaderRegistry):
    """`HeaderRegistry` whose header classes are made once per kind of header."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[type, type[BaseHeader]] = {}

    def map_to_type(self, name: str, cls: type[BaseHeader]) -> None:
        super().map_to_type(name, cls)
        self._made.clear()

    def __getitem__(self, name: str) -> type[BaseHeader]:
        kind = self.registry.get(name.lower(), self.default_class)
        made = self._made.get(kind)
        if made is None:
            made = type("_" + kind.__name__, (kind, self.base_class), {})
            self._made[kind] = made
        return made


FETCHED = 256
MAX_CACHED_VALUE = 256


class CachingPolicy(EmailPolicy):
    """`EmailPolicy` whose parsed headers are kept for the next read of the same one."""

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if hasattr(value, "name") or len(value) > MAX_CACHED_VALUE:
            return super().header_fetch_parse(name, value)
        return _fetch(self, name, value)


@functools.lru_cache(maxsize=FETCHED)
def _fetch(policy: EmailPolicy, name: str, value: str) -> Any:
    return EmailPolicy.header_fetch_parse(policy, name, value)


POLICY = cast("EmailPolicy[EmailMessage]", CachingPolicy(header_factory=CachedHeaderRegistry()))
"""`policy.default` (linesep "\\n", no line-length cap on parse), its parses kept."""
SMTP_POLICY: EmailPolicy[EmailMessage] = POLICY.clone(linesep="\r\n")
"""As `policy.SMTP`: `POLICY` with CRLF line ends."""
