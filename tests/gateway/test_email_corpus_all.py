"""Every corpus email, each message on its own, through the real poller: nothing lost.

`tests/gateway/test_email_corpus.py` hands each corpus *file* to `handle_email`. An mbox
file is one message there (its first, the others read as its body), and the RFC 2047
vectors (a JSON file) are not mail at all, so about half the corpus's messages never
reach the gateway on their own. Here every message does: each file that is one message,
each message of each mbox file, and a mail made of each RFC 2047 vector. All of them go
into a real Dovecot mailbox in one batch and through `poll_once` (IMAP fetch in chunks,
the pipeline, the move to Processed or Failed), on SQLite and on PostgreSQL:

- nothing lost: every message is fetched, none is left in INBOX, each is moved to
  Processed or Failed, and each is stored (its own row, handled or ignored as automatic
  mail, the row of the copy it duplicates, or a failed row with the error);
- nothing quarantined: no message makes the pipeline raise (that would be a bug);
- the operator API shows what was stored without a server error: the failed mail list
  and the conversation of every sender the corpus has.
"""

from __future__ import annotations

import asyncio
import json
import mailbox
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from gateway.email_channel import handle_email
from gateway.email_poller import poll_once
from gateway.runtime import Runtime
from models.messages import InboundMessage
from tests.gateway.test_email import runtime as runtime  # the fixture: Dovecot + SMTP
from tests.gateway.test_email_corpus import CORPUS, DESK, corpus_files, name_of
from tests.mailservers import Dovecot


def _is_mbox(path: Path) -> bool:
    return path.suffix == ".mbox"


def corpus_messages() -> list[tuple[str, bytes]]:
    """(name, raw message) for every message of the email corpus."""
    messages: list[tuple[str, bytes]] = []
    for path in corpus_files():
        if not _is_mbox(path):
            messages.append((name_of(path), path.read_bytes()))
            continue
        box = mailbox.mbox(path, create=False)
        try:
            found = [
                (f"{name_of(path)}#{n}", box.get_bytes(key)) for n, key in enumerate(box.keys())
            ]
        finally:
            box.close()
        assert found, f"{name_of(path)}: no message in it"
        messages += found
    vectors = CORPUS / "arabic-persian-vectors" / "rfc2047_arabic_persian_vectors.json"
    for n, vector in enumerate(json.loads(vectors.read_text(encoding="utf-8"))["vectors"]):
        messages.append((f"{name_of(vectors)}#{n}", _vector_mail(n, vector["encoded"])))
    return messages


def _vector_mail(n: int, encoded: str) -> bytes:
    """A citizen's mail carrying an RFC 2047 vector: as its Subject, or, for the
    Content-Type one, as the type of an attachment with an encoded-word file name."""
    head = (
        f"From: =?utf-8?B?2YXYsduM2YU=?= <vector{n}@example.org>\r\nTo: {DESK}\r\n"
        f"Message-ID: <vector-{n}@example.org>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0330\r\n"
    )
    folded = encoded.replace("\r\n", "\n").replace("\n", "\r\n")
    if folded.startswith("image/"):
        return (
            f"{head}Subject: HELP\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHELP\r\n"
            f"--b\r\nContent-Type: {folded}\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            "R0lGODlhAQABAAAAACw=\r\n--b--\r\n"
        ).encode()
    return f"{head}Subject: {folded}\r\n\r\nHELP\r\n".encode()


def _append_all(dovecot: Dovecot, messages: list[tuple[str, bytes]]) -> list[str]:
    """APPEND every message over one connection; the names the server refused."""
    refused = []
    with dovecot.connect() as conn:
        for name, raw in messages:
            typ, data = conn.append("INBOX", None, None, raw)
            if typ != "OK":
                refused.append(f"{name}: {data!r}"[:300])
    return refused


async def _count(runtime: Runtime, *where: Any) -> int:
    async with runtime.sessions() as session:
        stmt = select(func.count()).select_from(InboundMessage)
        for clause in where:
            stmt = stmt.where(clause)
        return await session.scalar(stmt) or 0


async def test_every_corpus_message_is_polled_stored_and_never_lost(
    runtime: Runtime,
    dovecot: Dovecot,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
) -> None:
    messages = corpus_messages()
    assert len(messages) >= 387, len(messages)  # 190 one-message files, 191 in mboxes, 6
    runtime.settings = runtime.settings.model_copy(
        # one address sends many corpus mails: every reply must be queued, none capped
        update={"mail_reply_cap_10min": 100_000, "mail_reply_cap_day": 100_000}
    )
    # No IMAP server keeps a zero-byte message (the corpus has two): those go to the
    # pipeline as the poller would hand them over.
    direct = [(name, raw) for name, raw in messages if not raw.strip()]
    assert len(direct) <= 2, [name for name, _ in direct]
    mailed = [(name, raw) for name, raw in messages if raw.strip()]
    started = time.monotonic()
    stored_directly = 0
    for name, raw in direct:
        outcome = await handle_email(runtime, raw, fallback_id=f"corpus:{name}")
        stored_directly += not outcome.duplicate
    refused = await asyncio.to_thread(_append_all, dovecot, mailed)
    assert not refused, "Dovecot refused:\n" + "\n".join(refused)
    appended = time.monotonic()

    result = await poll_once(runtime)
    polled = time.monotonic()
    print(
        f"\nemail corpus, every message, on {runtime.engine.dialect.name}: {len(messages)} "
        f"messages, {result.handled} stored, {result.duplicates} duplicates, "
        f"{result.failed} failed; append {appended - started:.1f}s, poll {polled - appended:.1f}s"
    )

    # nothing lost: all fetched, all filed away, each one stored
    assert result.fetched == len(mailed)
    assert result.handled + result.duplicates + result.failed == len(mailed)
    assert await dovecot.count("INBOX") == 0
    assert await dovecot.count("Processed") + await dovecot.count("Failed") == len(mailed)
    assert await dovecot.count("Failed") == result.failed
    assert await _count(runtime) == stored_directly + result.handled + result.failed
    assert await _count(runtime, InboundMessage.outcome == "failed") == result.failed
    async with runtime.sessions() as session:
        rows = list((await session.execute(select(InboundMessage))).scalars())
    unfinished = [
        f"{row.id}: outcome {row.outcome!r}, error {row.error!r}"
        for row in rows
        if row.outcome != "failed"
        and (row.handled_at is None or not (row.outcome or "").startswith(("handled", "ignored")))
    ]
    assert not unfinished, "\n".join(unfinished[:20])

    # nothing quarantined: the pipeline took every message
    failed = [f"{row.id}: {row.error}" for row in rows if row.outcome == "failed"]
    assert not failed, f"{len(failed)} messages failed:\n" + "\n".join(failed[:20])

    # what was stored is served without a server error
    response = await client.get("/api/v1/mail/failed", headers=admin_headers)
    assert response.status_code == 200 and len(response.json()) == result.failed
    senders = sorted({row.from_address for row in rows if row.from_address})
    assert len(senders) > 50, len(senders)
    errors = []
    for sender in senders:
        response = await client.get(
            "/api/v1/messages", params={"email": sender}, headers=admin_headers
        )
        if response.status_code >= 500:
            errors.append(f"{sender!r}: {response.status_code}")
    assert not errors, "\n".join(errors[:20])
