"""Settings: the city's `config.yaml` (commands, services, texts) and the environment.

`config.yaml` holds what operators and translators edit; the environment holds where
things run and every secret. Both are validated with pydantic at start, and a wrong
file is refused with the file, the key and the reason (`ConfigError`), never a traceback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from handlers.limits import Limits

from gateway.city import (
    COMMANDS,
    CONVERSATION_WORDS,
    FIELD_TYPES,
    LANGUAGES,
    STATUSES,
    Bilingual,
    CityConfig,
    CommandConfig,
    District,
    Language,
    Service,
    ServiceField,
)

__all__ = [
    "COMMANDS",
    "CONVERSATION_WORDS",
    "FIELD_TYPES",
    "LANGUAGES",
    "STATUSES",
    "Bilingual",
    "CityConfig",
    "CommandConfig",
    "ConfigError",
    "District",
    "Language",
    "Service",
    "ServiceField",
    "Settings",
    "config_path_from_env",
    "load_city_config",
    "load_settings",
]


class ConfigError(Exception):
    """A configuration the gateway refuses to start with; the message names file and key."""


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
    # Longest HTTP request body any route accepts (gateway.body_limit); 413 past it.
    max_request_bytes: int = Field(default=1024 * 1024, gt=0)
    # Most inbound messages one transaction may hold (gateway.group_commit); 1 = no groups.
    group_commit_max: int = Field(default=64, gt=0)
    # How long a group may wait for the callers of the last one to come back, under
    # steady load only (gateway.group_commit); 0 = never.
    group_commit_gather_ms: float = Field(default=2.0, ge=0, le=50)
    # SQLite's `synchronous` in WAL mode (models.db.make_engine says what each costs).
    sqlite_synchronous: Literal["FULL", "NORMAL", "EXTRA"] = "FULL"
    secret_key: SecretStr | None = None
    data_dir: Path = Path("var")
    imap_processed_folder: str = "Processed"
    imap_failed_folder: str = "Failed"
    imap_first_start: Literal["new", "all"] = "new"
    imap_poll_seconds: float = Field(default=60, gt=0)
    imap_timeout: float = Field(default=30, gt=0)
    imap_idle: bool = True
    # Longest pause between attempts to reach an unreachable IMAP server.
    imap_retry_max: float = Field(default=30, gt=0)
    # How often a standing-by poller tries the mailbox's lock, and the holder checks it.
    poller_lock_retry: float = Field(default=5, gt=0)
    # Messages the poller fetches and handles together (they share group commits).
    imap_chunk: int = Field(default=32, gt=0)
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
    # Abuse limits per sender (handlers.limits); 0 messages or failures turns one off.
    sms_limit_messages: int = Field(default=20, ge=0)
    sms_limit_seconds: float = Field(default=600, gt=0)
    mail_limit_messages: int = Field(default=20, ge=0)
    mail_limit_seconds: float = Field(default=3600, gt=0)
    lookup_limit_failures: int = Field(default=5, ge=0)
    lookup_limit_seconds: float = Field(default=3600, gt=0)
    run_poller: bool = True
    run_outbox: bool = True

    def limits(self, channel: str) -> Limits:
        """The abuse limits of senders on `channel` (`sms` or `email`)."""
        from handlers.limits import Limits

        email = channel == "email"
        return Limits(
            messages=self.mail_limit_messages if email else self.sms_limit_messages,
            window=self.mail_limit_seconds if email else self.sms_limit_seconds,
            lookup_failures=self.lookup_limit_failures,
            lookup_window=self.lookup_limit_seconds,
        )

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
