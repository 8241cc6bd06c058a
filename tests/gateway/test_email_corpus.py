"""Every real message in ../shared/corpora/email goes through the email edge.

A robustness sweep, run on SQLite and on PostgreSQL: nothing escapes `handle_email` as an
exception; every message is stored exactly once and ends either handled, with one reply
queued in the outbox as a well-formed automatic reply, or ignored as automatic mail; and
handling the whole corpus a second time adds no inbound and no outbound row.
"""

from __future__ import annotations

import email
import hashlib
import time
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.email_channel import handle_email
from gateway.pipeline import Outcome
from gateway.runtime import Runtime
from models.messages import InboundMessage, OutboundMessage
from parsers.mime import parse_email
from tests.support import make_settings

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpora" / "email"
DESK = "desk@city.example"
KNOWN_BUGS: dict[str, str] = {}  # corpus files that show a known bug; none now


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        pytest.skip(f"email corpus {CORPUS} not present (../shared/corpora)")
    files = sorted(
        path
        for path in CORPUS.rglob("*")
        if path.is_file()
        and not path.name.upper().startswith("LICENSE")
        and path.suffix.lower() not in (".json", ".md")
    )
    assert files, f"no messages under {CORPUS}"
    return files


def name_of(path: Path) -> str:
    return path.relative_to(CORPUS).as_posix()


def make_runtime(database_url: str, city_config, tmp_path: Path) -> Runtime:
    settings = make_settings(
        database_url,
        mail_from=DESK,
        data_dir=tmp_path,
        # the corpus has many mails from one address: every reply must be queued
        mail_reply_cap_10min=100_000,
        mail_reply_cap_day=100_000,
    )
    return Runtime.create(settings, city_config)


async def handle_all(runtime: Runtime, files: list[Path]) -> tuple[dict[str, Outcome], list[str]]:
    """Each file through `handle_email`: the outcomes by name, and what raised."""
    outcomes: dict[str, Outcome] = {}
    failures: list[str] = []
    for path in files:
        name = name_of(path)
        try:
            outcomes[name] = await handle_email(
                runtime, path.read_bytes(), fallback_id=f"corpus:{name}"
            )
        except Exception as error:  # the point of the sweep: record, do not stop
            failures.append(f"{name}: {type(error).__name__}: {error}"[:300])
    return outcomes, failures


async def check_rows(
    runtime: Runtime, files: list[Path], outcomes: dict[str, Outcome]
) -> tuple[list[str], int, int]:
    """What is wrong with the stored rows of `files`, and the handled and ignored counts."""
    async with runtime.sessions() as session:
        inbound = {row.id: row for row in (await session.execute(select(InboundMessage))).scalars()}
        outbound = list((await session.execute(select(OutboundMessage))).scalars())
    replies: dict[int | None, list[OutboundMessage]] = {}
    for reply in outbound:
        replies.setdefault(reply.inbound_id, []).append(reply)

    problems: list[str] = []
    # One row per message. Two files are one message when DESIGN.md's dedupe key says so
    # (the corpus holds such copies that differ only in headers the key leaves out);
    # otherwise they never share a row, and no row is left over.
    keys = {name_of(path): dedupe_key(path.read_bytes()) for path in files}
    owners: dict[int, str] = {}
    first_of_key: dict[tuple[str | None, ...], str] = {}
    for name, outcome in outcomes.items():
        owner = owners.setdefault(outcome.inbound_id, name)
        if owner != name and (keys[owner] != keys[name] or not outcome.duplicate):
            problems.append(f"{name}: stored as the row of {owner}, another message")
        if keys[name][0] is not None:
            twin = first_of_key.setdefault(keys[name], name)
            if outcomes[twin].inbound_id != outcome.inbound_id:
                problems.append(f"{name}: a second row for the message of {twin}")
    problems += [f"inbound row {i} belongs to no file" for i in sorted(set(inbound) - set(owners))]
    if None in replies:
        problems.append(f"{len(replies[None])} outbound rows belong to no message")

    handled = ignored = 0
    for path in files:
        name = name_of(path)
        if owners[outcomes[name].inbound_id] != name:
            continue  # a copy of a message checked under its first file
        row = inbound.get(outcomes[name].inbound_id)
        if row is None:
            problems.append(f"{name}: no inbound row")
            continue
        result = row.outcome or ""
        queued = replies.get(row.id, [])
        if result.startswith("ignored: "):
            ignored += 1
            if queued or outcomes[name].messages:
                problems.append(f"{name}: {result}, yet answered")
            continue
        if not result.startswith("handled") or row.error is not None:
            problems.append(f"{name}: outcome {result!r}, error {row.error!r}")
            continue
        handled += 1
        if not row.reply_text:
            problems.append(f"{name}: handled without a reply text")
        elif len(queued) != 1:
            problems.append(f"{name}: {len(queued)} outbound rows, one expected")
        else:
            problems += [f"{name}: {p}" for p in reply_problems(queued[0], path.read_bytes())]
    return problems, handled, ignored


def dedupe_key(raw: bytes) -> tuple[str | None, ...]:
    """DESIGN.md: Message-ID plus sender, date, subject and body."""
    parsed = parse_email(raw)
    return (parsed.message_id, parsed.from_address, parsed.date, parsed.subject, parsed.text)


def reply_problems(reply: OutboundMessage, raw: bytes) -> list[str]:
    """What is wrong with the queued reply to the message `raw`."""
    problems = []
    if reply.status != "pending":
        problems.append(f"reply status {reply.status!r}")
    message = email.message_from_string(reply.payload or "", policy=policy.default)
    if message["Auto-Submitted"] != "auto-replied":
        problems.append(f"reply Auto-Submitted {message['Auto-Submitted']!r}")
    original = parse_email(raw).message_id
    # a long Message-ID folds the header onto its next line: compare without the fold
    in_reply_to = str(message["In-Reply-To"] or "").strip() or None
    if original and in_reply_to != original:
        problems.append(f"reply In-Reply-To {in_reply_to!r}, not {original!r}")
    return problems


async def counts(runtime: Runtime) -> tuple[int, int]:
    async with runtime.sessions() as session:
        inbound = await session.scalar(select(func.count()).select_from(InboundMessage))
        outbound = await session.scalar(select(func.count()).select_from(OutboundMessage))
    return inbound or 0, outbound or 0


async def test_every_corpus_email_is_handled_once(database_url, city_config, tmp_path):
    files = [path for path in corpus_files() if name_of(path) not in KNOWN_BUGS]
    runtime = make_runtime(database_url, city_config, tmp_path)
    try:
        started = time.monotonic()
        outcomes, failures = await handle_all(runtime, files)
        assert not failures, f"{len(failures)} raised:\n" + "\n".join(failures[:20])
        problems, handled, ignored = await check_rows(runtime, files, outcomes)
        copies = len(files) - len({o.inbound_id for o in outcomes.values()})
        print(
            f"\nemail corpus on {runtime.engine.dialect.name}: {len(files)} files, "
            f"{handled} handled, {ignored} ignored (automatic), {copies} copies deduped, "
            f"{len(KNOWN_BUGS)} known-bug files apart, {time.monotonic() - started:.1f}s"
        )
        assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:30])
        assert handled + ignored + copies == len(files)
        before = await counts(runtime)
        assert before == (handled + ignored, handled)

        again, failures = await handle_all(runtime, files)
        assert not failures, f"{len(failures)} raised the second time:\n" + "\n".join(failures)
        assert [n for n, o in again.items() if not o.duplicate] == []
        assert [n for n, o in again.items() if o.inbound_id != outcomes[n].inbound_id] == []
        assert await counts(runtime) == before
    finally:
        await runtime.close()


def mail(headers: str, sender: str = "ali@example.org") -> bytes:
    digest = hashlib.sha256(f"{headers}|{sender}".encode()).hexdigest()[:16]
    return (
        f"From: {sender}\r\nTo: {DESK}\r\nSubject: HELP\r\n"
        f"Message-ID: <{digest}@example.org>\r\n{headers}\r\nHELP\r\n"
    ).encode()


AUTOMATIC = [
    mail("Auto-Submitted: auto-replied\r\n"),
    mail("Auto-Submitted: auto-generated\r\n"),
    mail("Precedence: junk\r\n"),
    mail("Precedence: auto_reply\r\n"),
    mail("X-Autoreply: yes\r\n"),
    mail("X-Auto-Response-Suppress: All\r\n"),
    mail("List-Id: <citizens.lists.example>\r\n"),
    mail("Return-Path: <>\r\n"),
    mail("", sender="Mail Delivery System <MAILER-DAEMON@mx.example.org>"),
    mail("", sender="postmaster@example.org"),
    mail("", sender=f"City Desk <{DESK.upper()}>"),
]


async def test_automatic_mail_is_stored_and_never_answered(database_url, city_config, tmp_path):
    """Each of DESIGN.md's automatic-mail rules at the edge: a row, a reason, no reply."""
    runtime = make_runtime(database_url, city_config, tmp_path)
    try:
        results = [await handle_email(runtime, raw, fallback_id="auto") for raw in AUTOMATIC]
        async with runtime.sessions() as session:
            rows = [await session.get(InboundMessage, r.inbound_id) for r in results]
        assert [r.messages for r in results] == [()] * len(AUTOMATIC)
        assert [row.outcome[:9] if row and row.outcome else None for row in rows] == [
            "ignored: "
        ] * len(AUTOMATIC)
        assert await counts(runtime) == (len(AUTOMATIC), 0)
        # and a person's mail beside them is answered
        answered = await handle_email(runtime, mail(""), fallback_id="person")
        assert len(answered.messages) == 1
    finally:
        await runtime.close()
