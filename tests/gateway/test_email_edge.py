"""The email edge without a mail server: attachment rules, threading rules, dedupe rules."""

from __future__ import annotations

import base64
import hashlib
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from gateway.blobs import read_blob
from gateway.email_channel import handle_email
from gateway.runtime import Runtime
from models.cases import Case
from models.mail import StoredAttachment
from models.messages import InboundMessage, OutboundMessage
from tests.support import make_settings

DESK = "desk@city.example"
FORM = "Service: 6\nPostal code: 1435678911\nDistrict: 6\nPlate number: 12\nIntended use: 1\n"


@pytest.fixture
async def runtime(database_url, city_config, tmp_path):
    rt = Runtime.create(
        make_settings(database_url, mail_from=DESK, data_dir=tmp_path, secret_key="k" * 32),
        city_config,
    )
    yield rt
    await rt.close()


def mail(body: str, subject: str = "request", sender: str = "reza@example.org", **headers):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, DESK, subject
    message["Message-ID"] = headers.pop("message_id", None) or make_msgid(domain="example.org")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


async def replies(runtime) -> list[str]:
    async with runtime.sessions() as session:
        rows = await session.execute(select(OutboundMessage).order_by(OutboundMessage.id))
        return [r.body for r in rows.scalars()]


async def test_refused_attachment_is_named_and_allowed_one_kept(runtime):
    message = mail(FORM)
    message.add_attachment(
        b"MZ\x90\x00", maintype="application", subtype="x-msdownload", filename="plan.exe"
    )
    message.add_attachment(
        b"%PDF-1.4", maintype="application", subtype="pdf", filename="../../etc/passwd.pdf"
    )
    await handle_email(runtime, message.as_bytes(), fallback_id="1")
    (reply,) = await replies(runtime)
    assert "Tracking code" in reply and "plan.exe" in reply and "not accepted" in reply
    async with runtime.sessions() as session:
        stored = (await session.execute(select(StoredAttachment))).scalar_one()
    assert stored.filename == "../../etc/passwd.pdf"  # a label only, never a path
    path = runtime.settings.data_dir / "attachments" / stored.sha256[:2] / stored.sha256
    assert path.read_bytes() == b"%PDF-1.4"


HOSTILE_NAMES = [
    "../../etc/passwd",
    "/etc/passwd",
    "..\\..\\win.ini",
    "C:\\Windows\\system.ini",
    "plan\x00.pdf",
    "a" * 1000 + ".pdf",
    "نقشهٔ ساختمان.pdf",
    "~/.ssh/authorized_keys",
]


def with_attachments(names: list[str], refused: str) -> bytes:
    """A form with one PDF per name and a program named `refused`, each name given as
    RFC 2231 (any byte, NUL too)."""
    parts = [
        f"From: reza@example.org\r\nTo: {DESK}\r\nSubject: request\r\n"
        f"Message-ID: {make_msgid(domain='example.org')}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{FORM}\r\n"
    ]
    files = [
        (name, "application/pdf", b"%PDF-1.4 plan " + str(n).encode())
        for n, name in enumerate(names)
    ]
    for name, content_type, content in [*files, (refused, "application/x-msdownload", b"MZ")]:
        data = base64.b64encode(content).decode()
        parts.append(
            f"--b\r\nContent-Type: {content_type}\r\nContent-Transfer-Encoding: base64\r\n"
            f"Content-Disposition: attachment; filename*=utf-8''{quote(name, safe='')}\r\n"
            f"\r\n{data}\r\n"
        )
    return ("".join(parts) + "--b--\r\n").encode()


async def test_attachment_names_are_labels_and_never_paths(runtime, tmp_path):
    """Whatever a file is called, it is written only under the data folder, named by the
    SHA-256 of its bytes; the name it came with is kept as a label in the database."""
    data_dir = tmp_path / "data"
    runtime.settings = runtime.settings.model_copy(update={"data_dir": data_dir})
    passwd = Path("/etc/passwd").stat()
    mail = with_attachments(HOSTILE_NAMES, refused="../setup\x00.exe")
    outcome = await handle_email(runtime, mail, fallback_id="1")
    (reply,) = [m.text for m in outcome.messages]
    assert "Tracking code" in reply and "../setup.exe" in reply and "not accepted" in reply
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # nothing beside the folder
    stored_files = [p for p in data_dir.rglob("*") if p.is_file()]
    for path in stored_files:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        kind = path.relative_to(data_dir).parts[0]
        assert path == data_dir / kind / digest[:2] / digest and kind in ("mail", "attachments")
    assert len(stored_files) == len(HOSTILE_NAMES) + 1  # and the raw mail
    assert Path("/etc/passwd").stat().st_mtime_ns == passwd.st_mtime_ns
    async with runtime.sessions() as session:
        rows = await session.execute(select(StoredAttachment).order_by(StoredAttachment.id))
        stored = list(rows.scalars())
        case = (await session.execute(select(Case))).unique().scalar_one()
    assert [r.filename for r in stored] == [
        name.replace("\x00", "")[:120] for name in HOSTILE_NAMES
    ]
    for row, n in zip(stored, range(len(HOSTILE_NAMES)), strict=True):
        assert read_blob(data_dir, "attachments", row.sha256) == b"%PDF-1.4 plan " + str(n).encode()
        assert row.case_id == case.id


async def test_oversize_message_gets_a_reply_saying_so(runtime):
    runtime.settings = runtime.settings.model_copy(update={"mail_message_max_bytes": 2000})
    message = mail(FORM)
    message.add_attachment(b"x" * 5000, maintype="application", subtype="pdf", filename="a.pdf")
    await handle_email(runtime, message.as_bytes(), fallback_id="1")
    (reply,) = await replies(runtime)
    assert "larger than" in reply
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Case)) == 0


async def test_case_tag_in_subject_only_from_the_cases_contact(runtime):
    await handle_email(runtime, mail(FORM, sender="owner@example.org").as_bytes(), fallback_id="1")
    async with runtime.sessions() as session:
        case = (await session.execute(select(Case))).unique().scalar_one()
    tag = f"Re: request [CG-{case.code}]"
    await handle_email(
        runtime,
        mail("a note from a stranger", tag, "other@example.org").as_bytes(),
        fallback_id="2",
    )
    await handle_email(
        runtime, mail("a note from the owner", tag, "owner@example.org").as_bytes(), fallback_id="3"
    )
    async with runtime.sessions() as session:
        case = (await session.execute(select(Case))).unique().scalar_one()
    notes = [e.note for e in case.events if e.kind == "message"]
    assert notes == ["a note from the owner"]


async def test_reused_message_id_with_other_content_is_not_dropped(runtime):
    first = mail("HELP", subject="HELP", message_id="<same@example.org>")
    second = mail("STATUS 4821 3307 6634", subject="STATUS", message_id="<same@example.org>")
    one = await handle_email(runtime, first.as_bytes(), fallback_id="1")
    two = await handle_email(runtime, second.as_bytes(), fallback_id="2")
    again = await handle_email(runtime, first.as_bytes(), fallback_id="3")
    assert not one.duplicate and not two.duplicate and again.duplicate
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(InboundMessage)) == 2
    assert len(await replies(runtime)) == 2


async def test_new_by_email_sends_a_fill_in_form_that_files_when_returned(runtime):
    await handle_email(runtime, mail("", subject="جدید ۶").as_bytes(), fallback_id="1")
    (template,) = await replies(runtime)
    assert "خدمت: 6" in template and "کد پستی ملک:" in template
    filled = template.split("خدمت: 6", 1)[1]
    answers = {
        "کد پستی ملک:": "۱۴۳۵۶۷۸۹۱۱",
        "منطقه شهرداری:": "۶",
        "پلاک ثبتی:": "۱۲",
        "کاربری مورد نظر:": "اداری",
    }
    for label, value in answers.items():
        filled = filled.replace(label, f"{label} {value}")
    await handle_email(
        runtime, mail("خدمت: ۶" + filled, subject="Re: جدید ۶").as_bytes(), fallback_id="2"
    )
    created = (await replies(runtime))[-1]
    assert "ثبت شد" in created
    async with runtime.sessions() as session:
        case = (await session.execute(select(Case))).unique().scalar_one()
    assert case.fields["intended_use"] == "office" and case.channel == "email"


async def test_reply_caps_per_address_ten_minutes_and_a_day(runtime):
    from datetime import timedelta

    from models.base import utcnow

    runtime.settings = runtime.settings.model_copy(
        update={"mail_reply_cap_10min": 3, "mail_reply_cap_day": 5}
    )
    start = utcnow()
    runtime.clock = lambda: start

    async def send(n: int, sender: str = "loop@example.org") -> str | None:
        await handle_email(runtime, mail("HELP", sender=sender).as_bytes(), fallback_id=str(n))
        async with runtime.sessions() as session:
            row = (
                (await session.execute(select(InboundMessage).order_by(InboundMessage.id.desc())))
                .scalars()
                .first()
            )
        return row.outcome if row else None

    outcomes = [await send(n) for n in range(4)]
    assert outcomes[:3] == ["handled"] * 3
    assert "cap" in (outcomes[3] or "")  # the fourth within ten minutes is not answered
    assert await send(99, sender="other@example.org") == "handled"  # per address
    runtime.clock = lambda: start + timedelta(minutes=11)
    after = [await send(n) for n in range(10, 13)]  # a new ten-minute window
    assert after[:2] == ["handled", "handled"]
    assert "cap" in (after[2] or ""), "five a day to one address"
    async with runtime.sessions() as session:
        to_loop = await session.scalar(
            select(func.count())
            .select_from(OutboundMessage)
            .where(OutboundMessage.to_address == "loop@example.org")
        )
    assert to_loop == 5
