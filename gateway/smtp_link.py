"""One SMTP connection kept for a whole outbox pass instead of one per message.

Connecting (and STARTTLS and AUTH, where configured) costs more than sending a short
reply, so `deliver_due` sends every email of a pass over one `SmtpLink`. Any error
closes the connection; the next message opens a fresh one, so a server that dropped
us, or a refused transaction, never poisons the messages after it.
"""

from __future__ import annotations

from email.message import EmailMessage, Message

import aiosmtplib

from gateway.settings import Settings


class SmtpLink:
    """A lazily opened SMTP client for one delivery pass; `close` at its end."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: aiosmtplib.SMTP | None = None
        self.connections = 0

    async def send(self, message: Message | EmailMessage) -> None:
        client = await self._connected()
        try:
            await client.send_message(message)
        except Exception:
            await self.close()
            raise

    async def send_raw(self, sender: str, recipient: str, payload: str) -> None:
        """A rendered ASCII message as it is (line ends made CRLF by aiosmtplib)."""
        client = await self._connected()
        try:
            await client.sendmail(sender, [recipient], payload)
        except Exception:
            await self.close()
            raise

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port or (465 if s.smtp_security == "tls" else 587),
            username=s.smtp_user,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            use_tls=s.smtp_security == "tls",
            start_tls=s.smtp_security == "starttls",
            cert_bundle=str(s.smtp_ca_file) if s.smtp_ca_file else None,
            timeout=s.smtp_timeout,
        )
        await client.connect()
        self._client = client
        self.connections += 1
        return client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None or not client.is_connected:
            return
        try:
            await client.quit()
        except Exception:
            client.close()
