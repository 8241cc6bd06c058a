"""The types every handler shares: the city it serves, its context, the reply it returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.limits import Limits
from models.contacts import Contact
from parsers.display import localize_digits
from parsers.fields import FieldSpec, Labelled
from parsers.grammar import KeywordTable, ParsedCommand
from parsers.segments import segments

MAX_SEGMENTS = 2


class ServiceSpec(Protocol):
    """One service of the catalogue, as handlers see it."""

    @property
    def code(self) -> str: ...

    @property
    def number(self) -> int: ...

    @property
    def name(self) -> Labelled: ...

    @property
    def sla_days(self) -> int: ...

    @property
    def districts(self) -> Literal["all"] | Sequence[int]: ...

    @property
    def fields(self) -> Sequence[FieldSpec]: ...


class City(Protocol):
    """What handlers need of the city's configuration (met by gateway's CityConfig)."""

    @property
    def default_region(self) -> str: ...

    @property
    def services(self) -> Sequence[ServiceSpec]: ...

    @property
    def expiry_minutes(self) -> int: ...

    def text(self, key: str, language: str, **values: object) -> str: ...

    def status_name(self, status: str, language: str) -> str: ...

    def service_name(self, code: str, language: str) -> str: ...

    def service(self, code: str) -> ServiceSpec | None: ...

    def service_by_number(self, number: int) -> ServiceSpec | None: ...

    def district_numbers(self, service: str | None = None) -> list[int]: ...

    def district_label(self, number: int, language: str) -> str: ...

    def words(self, kind: str, language: str | None = None) -> list[str]: ...


@dataclass(frozen=True)
class Reply:
    """A reply to the citizen: a text key (for tests and logs) and one or more messages.

    Each part is one message within the SMS budget; most replies have one.
    """

    key: str
    parts: tuple[str, ...]
    language: str

    @property
    def text(self) -> str:
        return "\n".join(self.parts)


def fit(parts: Sequence[str], max_segments: int = MAX_SEGMENTS) -> tuple[str, ...]:
    """Adjacent parts joined into one message wherever the result stays within budget."""
    merged: list[str] = []
    for part in parts:
        if not part:
            continue
        if merged and segments(merged[-1] + "\n" + part) <= max_segments:
            merged[-1] = merged[-1] + "\n" + part
        else:
            merged.append(part)
    return tuple(merged)


@dataclass
class Context:
    """Everything a handler may use; no channel, no transport."""

    session: AsyncSession
    texts: City
    contact: Contact
    language: str
    keywords: KeywordTable
    actor: str = "citizen"
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Long messages (email): whole forms and lists in one reply, no SMS conversation.
    document: bool = False
    # False when the sender's identity is not proven (an email without a passing
    # Authentication-Results): such a sender is a stranger even to its own cases.
    trusted: bool = True
    # The sender's abuse limits (handlers.limits): STATUS counts failed lookups with them.
    limits: Limits = field(default_factory=Limits)

    def say(self, key: str, **values: object) -> str:
        """The text `key` in the contact's language, digits localised."""
        return localize_digits(self.texts.text(key, self.language, **values), self.language)

    def reply(self, key: str, **values: object) -> Reply:
        return Reply(key=key, parts=(self.say(key, **values),), language=self.language)

    def replies(self, key: str, *parts: str) -> Reply:
        return Reply(key=key, parts=fit(parts), language=self.language)

    def keyword(self, command: str) -> str:
        """The first keyword of `command` in the reply's language, for hints."""
        words = self.keywords.keywords_for(command, self.language)
        return words[0] if words else command.upper()

    def word(self, kind: str) -> str:
        """The first conversation word of `kind` in the reply's language."""
        words = self.texts.words(kind, self.language)
        return words[0] if words else kind.upper()


Handler = Callable[[ParsedCommand, Context], Awaitable[Reply]]
