"""The types every handler shares: the context it runs in and the reply it returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from models.contacts import Contact
from parsers.display import localize_digits
from parsers.grammar import KeywordTable, ParsedCommand


class Texts(Protocol):
    """What handlers need of the city's configuration (met by gateway's CityConfig)."""

    def text(self, key: str, language: str, **values: object) -> str: ...

    def status_name(self, status: str, language: str) -> str: ...

    def service_name(self, code: str, language: str) -> str: ...


@dataclass(frozen=True)
class Reply:
    """A reply to the citizen: the text key (for tests and logs) and the rendered text."""

    key: str
    text: str
    language: str


@dataclass
class Context:
    """Everything a handler may use; no channel, no transport."""

    session: AsyncSession
    texts: Texts
    contact: Contact
    language: str
    keywords: KeywordTable
    actor: str = "citizen"
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def reply(self, key: str, **values: object) -> Reply:
        """The text `key` in the contact's language, digits localised."""
        text = self.texts.text(key, self.language, **values)
        return Reply(key=key, text=localize_digits(text, self.language), language=self.language)

    def keyword(self, command: str) -> str:
        """The first keyword of `command` in the reply's language, for hints."""
        words = self.keywords.keywords_for(command, self.language)
        return words[0] if words else command.upper()


Handler = Callable[[ParsedCommand, Context], Awaitable[Reply]]
