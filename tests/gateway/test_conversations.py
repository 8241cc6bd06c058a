"""Multi-step SMS forms through the real, signed webhook, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models.base import utcnow
from models.cases import Case, CaseEvent
from models.contacts import Contact
from models.conversations import Conversation
from parsers import tracking
from parsers.display import persian_digits
from parsers.normalize import fold_digits
from tests.support import Twilio, reply_messages, sms_params

CITIZEN = "+989121234567"


async def count(app, model, *where) -> int:
    async with app.state.runtime.sessions() as session:
        stmt = select(func.count()).select_from(model)
        for clause in where:
            stmt = stmt.where(clause)
        return await session.scalar(stmt)


async def the_case(app) -> Case:
    async with app.state.runtime.sessions() as session:
        return (await session.execute(select(Case))).unique().scalar_one()


def code_in(reply: str) -> str:
    digits = "".join(ch for ch in fold_digits(reply) if ch.isdigit() or ch == "\n")
    for line in digits.splitlines():
        if len(line) == 12 and tracking.is_valid(line):
            return line
    raise AssertionError(f"no tracking code in {reply!r}")


async def test_persian_happy_path_files_a_case(twilio: Twilio, app):
    menu = await twilio.sms("جدید", sender=CITIZEN)
    assert "خدمات (۱/" in menu and "بیشتر" in menu
    page2 = await twilio.sms("بیشتر", sender=CITIZEN)
    assert "استعلام کاربری ملک" in page2
    first = await twilio.sms("۶", sender=CITIZEN)
    assert "(۱/۵)" in first and "کد پستی" in first
    assert "(۲/۵)" in await twilio.sms("۱۴۳۵۶-۷۸۹۱۱", sender=CITIZEN)
    assert "(۳/۵)" in await twilio.sms("منطقه ۶", sender=CITIZEN)
    choice = await twilio.sms("۱۲۳/۴۵", sender=CITIZEN)
    assert "(۴/۵)" in choice and "۱) مسکونی" in choice
    assert "(۵/۵)" in await twilio.sms("تجاری", sender=CITIZEN)
    summary = await twilio.sms("رد", sender=CITIZEN)
    assert "خلاصه" in summary and "تجاری" in summary and "منطقه ۶" in summary
    created = await twilio.sms("بله", sender=CITIZEN)
    assert "ثبت شد" in created and "رمز" in created
    code = code_in(created)
    assert persian_digits(tracking.format_code(code)) in created

    case = await the_case(app)
    assert case.code == code
    assert case.service == "land_use_inquiry"
    assert case.status == "received"
    assert case.channel == "sms"
    assert case.district == 6
    assert case.fields == {
        "postal_code": "1435678911",
        "district": 6,
        "plate_number": "۱۲۳/۴۵",
        "intended_use": "commercial",
        "mobile": None,
    }
    async with app.state.runtime.sessions() as session:
        event = (await session.execute(select(CaseEvent))).scalar_one()
    assert event.kind == "created" and "sms" in (event.note or "")
    assert await count(app, Conversation) == 0

    status = await twilio.sms(f"وضعیت {code}", sender=CITIZEN)
    assert "استعلام کاربری ملک: دریافت شد" in status
    assert "موعد" in status
    mine = await twilio.sms("پرونده‌های من", sender=CITIZEN)
    assert persian_digits(code) in mine


async def test_english_happy_path_with_date_choice_and_yes_no(twilio: Twilio, app):
    assert "(1/6)" in await twilio.sms("NEW 2", sender=CITIZEN)
    for answer in ("0012345679", "1435678911", "6"):
        await twilio.sms(answer, sender=CITIZEN)
    assert "(5/6)" in await twilio.sms("2", sender=CITIZEN)
    assert "(6/6)" in await twilio.sms("yes", sender=CITIZEN)
    summary = await twilio.sms("09351112233", sender=CITIZEN)
    assert "Summary" in summary and "0935 111 2233" in summary
    created = await twilio.sms("YES", sender=CITIZEN)
    assert "Tracking code" in created
    case = await the_case(app)
    assert case.fields["has_permit"] is True
    assert case.fields["mobile"] == "+989351112233"
    assert case.fields["owner_national_id"] == "0012345679"


VALID = {
    "national_id": "0012345679",
    "postal_code": "1435678911",
    "district": "6",
    "text": "۱۲۳/۴۵",
    "number": "3",
    "mobile": "09121234567",
    "date": "1403/05/20",
    "choice": "1",
    "yes_no": "بله",
}
INVALID = [
    ("national_id", "0012345678", "معتبر نیست"),
    ("national_id", "۱۲۳", "۱۰ رقم"),
    ("national_id", "1111111111", "ساختگی"),
    ("postal_code", "123", "۱۰ رقم"),
    ("district", "منطقه ۹۹", "شماره منطقه"),
    ("number", "هیچ", "عددی از"),
    ("number", "0", "عددی از ۱"),
    ("mobile", "02188776655", "همراه"),
    ("date", "1404/12/30", "تاریخ"),
    ("date", "دیروز", "تاریخ"),
    ("choice", "۹", "گزینه"),
    ("yes_no", "شاید", "«بله» یا «خیر»"),
    ("text", "ب" * 400, "حداکثر"),
]


def _first_field_of_type(city_config, kind: str):
    for service in city_config.services:
        for index, spec in enumerate(service.fields):
            if spec.type == kind and (kind != "text" or spec.max_length):
                return service, index
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, answer, fragment", INVALID)
async def test_invalid_answer_is_asked_again_with_the_reason(
    twilio: Twilio, city_config, kind, answer, fragment
):
    service, index = _first_field_of_type(city_config, kind)
    await twilio.sms(f"جدید {service.number}", sender=CITIZEN)
    for spec in service.fields[:index]:
        await twilio.sms(VALID[spec.type], sender=CITIZEN)
    step = persian_digits(f"({index + 1}/{len(service.fields)})")
    reply = await twilio.sms(answer, sender=CITIZEN)
    assert fragment in reply
    assert step in reply, "the same question is asked again"
    after = await twilio.sms(VALID[kind], sender=CITIZEN)
    assert step not in after


async def test_back_and_edit(twilio: Twilio, app):
    await twilio.sms("NEW 6", sender=CITIZEN)
    await twilio.sms("1435678911", sender=CITIZEN)
    assert "(1/5)" in await twilio.sms("BACK", sender=CITIZEN)
    assert "(2/5)" in await twilio.sms("1435678922", sender=CITIZEN)
    for answer in ("7", "12/5", "1", "SKIP"):
        reply = await twilio.sms(answer, sender=CITIZEN)
    assert "Summary" in reply and "1435678922" in reply and "District 7" in reply
    assert "(2/5)" in await twilio.sms("EDIT 2", sender=CITIZEN)
    summary = await twilio.sms("8", sender=CITIZEN)
    assert "Summary" in summary and "District 8" in summary
    assert "question number" in await twilio.sms("EDIT 9", sender=CITIZEN)
    await twilio.sms("YES", sender=CITIZEN)
    case = await the_case(app)
    assert case.district == 8
    assert case.fields["postal_code"] == "1435678922"


async def test_exit_leaves_and_next_message_is_handled_afresh(twilio: Twilio, app):
    await twilio.sms("جدید ۶", sender=CITIZEN)
    assert "بسته شد" in await twilio.sms("انصراف", sender=CITIZEN)
    assert await count(app, Conversation) == 0
    assert "متوجه نشدیم" in await twilio.sms("1435678911", sender=CITIZEN)
    assert "فرم بازی ندارید" in await twilio.sms("انصراف", sender=CITIZEN)
    assert await count(app, Case) == 0


async def test_cancel_is_the_carrier_word_not_exit(twilio: Twilio, app):
    await twilio.sms("NEW 6", sender=CITIZEN)
    await twilio.sms("CANCEL", sender=CITIZEN)
    async with app.state.runtime.sessions() as session:
        contact = (await session.execute(select(Contact))).scalar_one()
    assert contact.opted_out is True
    assert await count(app, Conversation) == 0


async def test_form_expires_with_a_clock_the_test_controls(twilio: Twilio, app):
    runtime = app.state.runtime
    start = utcnow()
    runtime.clock = lambda: start
    await twilio.sms("جدید ۶", sender=CITIZEN)
    runtime.clock = lambda: start + timedelta(minutes=29)
    assert "(۲/۵)" in await twilio.sms("1435678911", sender=CITIZEN)
    runtime.clock = lambda: start + timedelta(minutes=29 + 31)
    messages = await twilio.messages("6", sender=CITIZEN)
    assert "۳۰ دقیقه" in messages[0] and "بسته شد" in messages[0]
    assert "(۳/۵)" not in "".join(messages)
    assert await count(app, Conversation) == 0


async def test_help_and_stop_always_act_in_a_form(twilio: Twilio, app):
    await twilio.sms("جدید ۶", sender=CITIZEN)
    help_messages = await twilio.messages("راهنما", sender=CITIZEN)
    assert "دستورها" in help_messages[0]
    assert "هنوز باز است" in help_messages[-1]
    assert "(۲/۵)" in await twilio.sms("1435678911", sender=CITIZEN)
    await twilio.sms("لغو", sender=CITIZEN)
    async with app.state.runtime.sessions() as session:
        contact = (await session.execute(select(Contact))).scalar_one()
    assert contact.opted_out is True
    assert await count(app, Conversation) == 0


async def test_two_webhooks_at_once_neither_skip_a_step_nor_double_a_case(
    twilio: Twilio, app, monkeypatch
):
    # Service 5 asks the seller's and then the buyer's national ID: the same answer
    # sent twice at once must fill both, one after the other. Reading the open form
    # is slowed down so that, without per-contact serialisation, both would read it.
    from handlers import registry

    original = registry.find_conversation

    async def slow_find(*args, **kwargs):
        found = await original(*args, **kwargs)
        await asyncio.sleep(0.3)
        return found

    monkeypatch.setattr(registry, "find_conversation", slow_find)
    await twilio.sms("NEW 5", sender=CITIZEN)
    replies = await asyncio.gather(
        twilio.post(sms_params("0012345679", sender=CITIZEN)),
        twilio.post(sms_params("0012345679", sender=CITIZEN)),
    )
    texts = sorted("".join(reply_messages(r.text)) for r in replies)
    assert any("(2/6)" in t for t in texts) and any("(3/6)" in t for t in texts)
    for answer in ("1435678911", "12/5", "1403/05/20"):
        await twilio.sms(answer, sender=CITIZEN)
    await twilio.sms("SKIP", sender=CITIZEN)
    both = await asyncio.gather(
        twilio.post(sms_params("YES", sender=CITIZEN)),
        twilio.post(sms_params("YES", sender=CITIZEN)),
    )
    assert all(r.status_code == 200 for r in both)
    assert await count(app, Case) == 1
    case = await the_case(app)
    assert case.fields["seller_national_id"] == case.fields["buyer_national_id"] == "0012345679"


async def test_retried_confirmation_files_one_case(twilio: Twilio, app):
    await twilio.sms("NEW 6", sender=CITIZEN)
    for answer in ("1435678911", "6", "12", "1", "SKIP"):
        await twilio.sms(answer, sender=CITIZEN)
    params = sms_params("YES", sender=CITIZEN)
    first = await twilio.post(params)
    again = await twilio.post(params)
    assert reply_messages(first.text) == reply_messages(again.text)
    assert await count(app, Case) == 1
