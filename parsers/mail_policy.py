"""The email policy every parse and render uses: `email.policy.default`, made cheaper.

The standard library's header registry builds a new class for every header it parses
or stores (`HeaderRegistry.__getitem__` calls `type(...)` each time), which was an
eighth of the email path's time. `POLICY` is `policy.default` with a registry that
builds each class once and keeps it; the classes hold no state, so a header parses and
folds exactly as before. The cache is keyed by the registry's classes, not by header
names, so a mail with thousands of made-up header names cannot grow it.
"""

from __future__ import annotations

from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy


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


POLICY: EmailPolicy[EmailMessage] = policy.default.clone(header_factory=CachedHeaderRegistry())
"""`policy.default` (linesep "\\n", no line-length cap on parse) with the cached registry."""
SMTP_POLICY: EmailPolicy[EmailMessage] = POLICY.clone(linesep="\r\n")
"""As `policy.SMTP`: `POLICY` with CRLF line ends."""
