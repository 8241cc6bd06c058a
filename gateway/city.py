"""The schema of `config.yaml`: commands, texts, statuses, districts, the service catalogue.

What operators and translators edit, validated with pydantic; `gateway.settings` loads it
and reports a mistake with the file, the key and the reason.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Language = Literal["fa", "en"]
LANGUAGES: tuple[Language, ...] = ("fa", "en")
STATUSES = (
    "received",
    "in_review",
    "awaiting_citizen",
    "awaiting_agency",
    "approved",
    "rejected",
    "closed",
)
CommandName = Literal["help", "status", "new", "mycases", "exit", "stop", "start", "lang"]
COMMANDS: tuple[str, ...] = get_args(CommandName)
CONVERSATION_WORDS = ("more", "back", "confirm", "edit", "skip")
FieldType = Literal[
    "text",
    "number",
    "national_id",
    "postal_code",
    "mobile",
    "district",
    "date",
    "choice",
    "yes_no",
]
FIELD_TYPES: tuple[str, ...] = get_args(FieldType)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bilingual(_Strict):
    """A text in every language the gateway speaks."""

    fa: str = Field(min_length=1)
    en: str = Field(min_length=1)

    def get(self, language: str) -> str:
        return self.en if language == "en" else self.fa


class CommandConfig(_Strict):
    """The keywords citizens may type for one command, per language."""

    fa: list[str] = Field(min_length=1)
    en: list[str] = Field(min_length=1)


class ChoiceOption(_Strict):
    key: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
    label: Bilingual


class ServiceField(_Strict):
    key: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    label: Bilingual
    type: FieldType
    required: bool = True
    help: Bilingual | None = None
    min: float | None = None
    max: float | None = None
    max_length: int | None = Field(default=None, gt=0, le=2000)
    options: list[ChoiceOption] | None = None

    @model_validator(mode="after")
    def _options_match_type(self) -> ServiceField:
        if self.type == "choice" and not self.options:
            raise ValueError("a 'choice' field needs a non-empty 'options' list")
        if self.type != "choice" and self.options:
            raise ValueError(f"'options' only belongs to 'choice' fields, not '{self.type}'")
        if self.type == "number" and (self.min is None or self.max is None):
            raise ValueError("a 'number' field needs 'min' and 'max'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("'min' is greater than 'max'")
        return self


class Service(_Strict):
    """One entry of the catalogue, modelled on an Open311 service definition."""

    code: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    number: int = Field(gt=0)
    name: Bilingual
    description: Bilingual
    department: Bilingual
    districts: Literal["all"] | list[int] = "all"
    sla_days: int = Field(gt=0)
    fields: list[ServiceField] = Field(min_length=1)

    @field_validator("fields")
    @classmethod
    def _unique_keys(cls, fields: list[ServiceField]) -> list[ServiceField]:
        keys = [f.key for f in fields]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"field keys repeated: {', '.join(dupes)}")
        return fields


class District(_Strict):
    number: int = Field(gt=0)
    name: Bilingual


class ConversationConfig(_Strict):
    """Multi-step forms: how long one waits for an answer, and the words used inside it."""

    expiry_minutes: int = Field(default=30, gt=0, le=24 * 60)
    words: dict[str, CommandConfig]

    @field_validator("words")
    @classmethod
    def _all_words(cls, words: dict[str, CommandConfig]) -> dict[str, CommandConfig]:
        if set(words) != set(CONVERSATION_WORDS):
            raise ValueError(f"words must be exactly {list(CONVERSATION_WORDS)}")
        return words


class ReportsConfig(_Strict):
    """Reports: how many trips to an office one case handled by SMS or email saves."""

    trips_per_case: float = Field(default=3, ge=0, le=100)


class CityConfig(_Strict):
    """Everything in `config.yaml`."""

    city: Bilingual
    default_language: Language = "fa"
    default_region: str = Field(default="IR", pattern=r"^[A-Z]{2}$")
    commands: dict[str, CommandConfig]
    conversation: ConversationConfig
    reports: ReportsConfig = Field(default_factory=ReportsConfig)
    statuses: dict[str, Bilingual]
    districts: list[District] = Field(min_length=1)
    services: list[Service] = Field(default_factory=list)
    texts: dict[str, Bilingual]

    @field_validator("commands")
    @classmethod
    def _known_commands(cls, commands: dict[str, CommandConfig]) -> dict[str, CommandConfig]:
        unknown = sorted(set(commands) - set(COMMANDS))
        if unknown:
            raise ValueError(f"unknown commands {unknown}; known: {list(COMMANDS)}")
        missing = sorted(set(COMMANDS) - set(commands))
        if missing:
            raise ValueError(f"commands missing: {missing}")
        return commands

    @field_validator("statuses")
    @classmethod
    def _all_statuses(cls, statuses: dict[str, Bilingual]) -> dict[str, Bilingual]:
        if set(statuses) != set(STATUSES):
            raise ValueError(f"statuses must be exactly {list(STATUSES)}")
        return statuses

    @model_validator(mode="after")
    def _cross_checks(self) -> CityConfig:
        numbers = [d.number for d in self.districts]
        if len(set(numbers)) != len(numbers):
            raise ValueError("districts: a district number is repeated")
        for attr in ("code", "number"):
            values = [getattr(s, attr) for s in self.services]
            if len(set(values)) != len(values):
                raise ValueError(f"services: a service {attr} is repeated")
        for service in self.services:
            if service.districts != "all":
                stray = sorted(set(service.districts) - set(numbers))
                if stray:
                    raise ValueError(f"services.{service.code}: unknown districts {stray}")
        for key, text in self.texts.items():
            fa_ph = set(_PLACEHOLDER.findall(text.fa))
            en_ph = set(_PLACEHOLDER.findall(text.en))
            if fa_ph != en_ph:
                raise ValueError(
                    f"texts.{key}: placeholders differ between fa {sorted(fa_ph)} "
                    f"and en {sorted(en_ph)}"
                )
        return self

    def text(self, key: str, language: str, **values: object) -> str:
        """The reply text `key` in `language`, with its placeholders filled."""
        return self.texts[key].get(language).format(**values)

    def status_name(self, status: str, language: str) -> str:
        named = self.statuses.get(status)
        return named.get(language) if named else status

    def service_name(self, code: str, language: str) -> str:
        found = self.service(code)
        return found.name.get(language) if found else code

    def keyword_triples(self) -> list[tuple[str, str, str]]:
        """(command, language, keyword) for every configured keyword, in file order."""
        return [
            (command, language, keyword)
            for command, per_language in self.commands.items()
            for language in LANGUAGES
            for keyword in getattr(per_language, language)
        ]

    def service(self, code: str) -> Service | None:
        return next((s for s in self.services if s.code == code), None)

    def service_by_number(self, number: int) -> Service | None:
        return next((s for s in self.services if s.number == number), None)

    def district(self, number: int) -> District | None:
        return next((d for d in self.districts if d.number == number), None)

    def district_numbers(self, service: str | None = None) -> list[int]:
        """Every district, or those a service is offered in."""
        found = self.service(service) if service else None
        if found is not None and found.districts != "all":
            return list(found.districts)
        return [d.number for d in self.districts]

    def district_label(self, number: int, language: str) -> str:
        found = self.district(number)
        return found.name.get(language) if found else str(number)

    def words(self, kind: str, language: str | None = None) -> list[str]:
        """The conversation words of `kind` (more, back, confirm, edit, skip) as written."""
        per_language = self.conversation.words[kind]
        languages = (language,) if language else LANGUAGES
        return [w for lang in languages for w in getattr(per_language, lang)]

    def conversation_word_triples(self) -> list[tuple[str, str, str]]:
        """(kind, language, word) for every word used inside a form."""
        return [
            (kind, language, word)
            for kind, per_language in self.conversation.words.items()
            for language in LANGUAGES
            for word in getattr(per_language, language)
        ]

    @property
    def expiry_minutes(self) -> int:
        return self.conversation.expiry_minutes
