"""Settings: the city's `config.yaml` (commands, services, texts) and the environment.

`config.yaml` holds what operators and translators edit; the environment holds where
things run and every secret. Both are validated with pydantic at start, and a wrong
file is refused with the file, the key and the reason (`ConfigError`), never a traceback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

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
COMMANDS = ("help", "status", "new", "mycases", "exit", "stop", "start", "lang")
CONVERSATION_WORDS = ("more", "back", "confirm", "edit", "skip")
FIELD_TYPES = (
    "text",
    "number",
    "national_id",
    "postal_code",
    "mobile",
    "district",
    "date",
    "choice",
    "yes_no",
)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class ConfigError(Exception):
    """A configuration the gateway refuses to start with; the message names file and key."""


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
    type: Literal[
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


class Settings(BaseSettings):
    """Where the gateway runs and its secrets: environment variables, which win."""

    model_config = SettingsConfigDict(env_prefix="CITYGATE_", extra="ignore")

    config: Path = Path("config.yaml")
    database_url: str = "sqlite+aiosqlite:///var/citygate.db"
    public_url: str | None = None
    admin_token: SecretStr | None = None
    # Named operator tokens: "name:token,name:token", or a file of "name token" lines.
    operator_tokens: SecretStr | None = None
    operator_tokens_file: Path | None = None
    dev_mode: bool = False
    twilio_account_sid: str | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_ACCOUNT_SID")
    )
    twilio_auth_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_AUTH_TOKEN")
    )
    twilio_from_number: str | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_FROM_NUMBER")
    )
    twilio_api_url: str = "https://api.twilio.com"
    imap_host: str | None = None
    imap_port: int | None = None
    imap_user: str | None = None
    imap_password: SecretStr | None = None
    imap_security: Literal["tls", "starttls", "none"] = "tls"
    imap_mailbox: str = "INBOX"
    imap_ca_file: Path | None = None
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: Literal["tls", "starttls", "none"] = "starttls"
    smtp_ca_file: Path | None = None
    mail_from: str | None = None
    max_body_chars: int = Field(default=1600, gt=0)
    secret_key: SecretStr | None = None
    data_dir: Path = Path("var")
    imap_processed_folder: str = "Processed"
    imap_failed_folder: str = "Failed"
    imap_first_start: Literal["new", "all"] = "new"
    imap_poll_seconds: float = Field(default=60, gt=0)
    imap_timeout: float = Field(default=30, gt=0)
    imap_idle: bool = True
    smtp_timeout: float = Field(default=30, gt=0)
    mail_attachment_max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    mail_message_max_bytes: int = Field(default=25 * 1024 * 1024, gt=0)
    mail_attachment_types: str = (
        "application/pdf,image/jpeg,image/png,image/tiff,image/vnd.dwg,application/acad,"
        "application/x-dwg,application/dxf,image/vnd.dxf,application/zip"
    )
    mail_reply_cap_10min: int = Field(default=10, ge=0)
    mail_reply_cap_day: int = Field(default=40, ge=0)
    mail_trusted_authserv_id: str | None = None
    outbox_max_attempts: int = Field(default=8, gt=0)
    run_poller: bool = True
    run_outbox: bool = True

    def operators(self) -> dict[str, str]:
        """Operator name -> token, from CITYGATE_ADMIN_TOKEN ("admin"), the list and the file.

        A malformed entry or a token shorter than 16 characters is a `ConfigError`.
        """
        found: dict[str, str] = {}
        if self.admin_token is not None:
            found["admin"] = self.admin_token.get_secret_value()
        entries: list[tuple[str, str]] = []
        if self.operator_tokens is not None:
            for item in self.operator_tokens.get_secret_value().split(","):
                if item.strip():
                    name, sep, token = item.strip().partition(":")
                    entries.append(("CITYGATE_OPERATOR_TOKENS", f"{name}{sep}{token}"))
        if self.operator_tokens_file is not None:
            try:
                text = self.operator_tokens_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"environment: CITYGATE_OPERATOR_TOKENS_FILE: cannot read: {exc.strerror}"
                ) from None
            for line in text.splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    entries.append((str(self.operator_tokens_file), line.strip()))
        for source, entry in entries:
            name, _, token = entry.replace(":", " ", 1).partition(" ")
            token = token.strip()
            if not re.fullmatch(r"[\w.\-]{1,64}", name) or len(token) < 16:
                raise ConfigError(
                    f"{source}: an entry must be 'name token' with a token of 16+ characters"
                )
            found[name] = token
        return found

    @property
    def imap_enabled(self) -> bool:
        return bool(self.imap_host and self.imap_user)

    @property
    def twilio_rest_enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.twilio_from_number)

    @property
    def smtp_enabled(self) -> bool:
        return bool(self.smtp_host and self.mail_from)

    @property
    def attachment_types(self) -> frozenset[str]:
        return frozenset(t.strip().lower() for t in self.mail_attachment_types.split(",") if t)

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, url: str | None) -> str | None:
        if url is None:
            return None
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError("must start with http:// or https:// and a host")
        return url.rstrip("/")

    @field_validator("admin_token")
    @classmethod
    def _token_strength(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return token


def _format_validation(source: str, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        lines.append(f"{source}: {key}: {item['msg']}")
    return "\n".join(lines)


def load_city_config(path: Path | str) -> CityConfig:
    """Read and validate `config.yaml`; any problem is a `ConfigError` naming file and key."""
    path = Path(path)
    try:
        raw_text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data: Any = yaml.safe_load(raw_text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(unknown line)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: {where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: (top level): expected a mapping of settings")
    try:
        return CityConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(str(path), exc)) from None


def load_settings(**overrides: Any) -> Settings:
    """Environment settings; a bad variable is a `ConfigError` naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for item in exc.errors():
            name = str(item["loc"][0]) if item["loc"] else "?"
            var = name if name.isupper() else f"CITYGATE_{name.upper()}"
            lines.append(f"environment: {var}: {item['msg']}")
        raise ConfigError("\n".join(lines)) from None


def config_path_from_env() -> Path:
    return Path(os.environ.get("CITYGATE_CONFIG", "config.yaml"))
