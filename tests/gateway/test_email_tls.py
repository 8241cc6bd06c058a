"""The IMAP poller over TLS against a real Dovecot with a throw-away self-signed
certificate, on SQLite and PostgreSQL: implicit TLS and STARTTLS with the certificate as
`imap_ca_file`, and a refused handshake when the certificate is not trusted."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest

from gateway.email_poller import connect, poll_once
from gateway.runtime import Runtime
from gateway.settings import CityConfig
from tests.mailservers import Dovecot
from tests.support import make_settings

CITIZEN = "maryam@example.org"

MakeRuntime = Callable[..., Runtime]


@pytest.fixture
async def make_runtime(
    database_url: str, city_config: CityConfig, dovecot_tls: Dovecot, tmp_path: Path
) -> AsyncIterator[MakeRuntime]:
    """Runtimes polling `dovecot_tls` (no SMTP); `imap_*` settings given per test."""
    made: list[Runtime] = []

    def make(**imap: Any) -> Runtime:
        settings = make_settings(
            database_url,
            imap_host="localhost",  # the name the certificate is for
            imap_user=dovecot_tls.user,
            imap_password=dovecot_tls.password,
            imap_first_start="all",
            imap_timeout=5,
            data_dir=tmp_path,
            secret_key="test-secret-key-for-tokens",
            **imap,
        )
        runtime = Runtime.create(settings, city_config)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        await runtime.close()


def help_mail() -> bytes:
    message = EmailMessage()
    message["From"] = f"Maryam <{CITIZEN}>"
    message["To"] = "desk@city.example"
    message["Subject"] = "HELP"
    message["Message-ID"] = make_msgid(domain="example.org")
    message["Date"] = "Sat, 28 Nov 2026 10:00:00 +0330"
    message.set_content("HELP")
    return message.as_bytes()


async def _handles_one(runtime: Runtime, dovecot: Dovecot) -> None:
    await dovecot.append(help_mail())
    result = await poll_once(runtime)
    assert (result.fetched, result.handled, result.failed) == (1, 1, 0)
    assert await dovecot.count("INBOX") == 0
    assert await dovecot.count("Processed") == 1
    assert await dovecot.count("Failed") == 0
    # and the poller's connection really is TLS, to the certificate's name
    client = await connect(runtime)
    try:
        transport = client.protocol.transport
        assert transport.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
        assert transport.get_extra_info("peercert")["subject"] == ((("commonName", "localhost"),),)
    finally:
        await client.logout()


async def test_implicit_tls_with_ca_file(make_runtime: MakeRuntime, dovecot_tls: Dovecot):
    runtime = make_runtime(
        imap_security="tls", imap_port=dovecot_tls.tls_port, imap_ca_file=dovecot_tls.cert_path
    )
    await _handles_one(runtime, dovecot_tls)


async def test_starttls_with_ca_file(make_runtime: MakeRuntime, dovecot_tls: Dovecot):
    runtime = make_runtime(
        imap_security="starttls", imap_port=dovecot_tls.port, imap_ca_file=dovecot_tls.cert_path
    )
    await _handles_one(runtime, dovecot_tls)


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


@pytest.mark.parametrize("security", ["tls", "starttls"])
async def test_untrusted_certificate_is_refused(
    make_runtime: MakeRuntime, dovecot_tls: Dovecot, security: str
):
    """Without the CA file the self-signed certificate must fail verification: no mail
    is read, and the error says why."""
    port = dovecot_tls.tls_port if security == "tls" else dovecot_tls.port
    runtime = make_runtime(imap_security=security, imap_port=port)
    await dovecot_tls.append(help_mail())
    with pytest.raises(Exception) as caught:
        await poll_once(runtime)
    errors = _chain(caught.value)
    verify = [e for e in errors if isinstance(e, ssl.SSLCertVerificationError)]
    assert verify, f"no certificate verification error in {errors!r}"
    assert "self-signed certificate" in str(verify[0]), verify[0]
    assert await dovecot_tls.count("INBOX") == 1
    assert await dovecot_tls.count("Processed") == 0
