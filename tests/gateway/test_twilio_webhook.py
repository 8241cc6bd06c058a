"""The Twilio edge: signatures, real-shaped bodies, retries and bad input."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlencode

import pytest
from sqlalchemy import func, select
from starlette.datastructures import ImmutableMultiDict

from gateway.twilio_sms import verify_signature
from models.messages import InboundMessage, OutboundMessage
from tests.support import (
    PUBLIC_URL,
    Twilio,
    corpus,
    reply_text,
    sms_params,
    twilio_signature,
)


def _vectors() -> list[dict]:
    path = corpus("twilio", "signature_vectors.json")
    return json.loads(path.read_text(encoding="utf-8"))["vectors"]


def test_signature_vectors_through_our_validation():
    data = json.loads(corpus("twilio", "signature_vectors.json").read_text(encoding="utf-8"))
    token = data["auth_token"]
    checked = 0
    for vector in data["vectors"]:
        url = vector["url"]
        if vector["name"] == "node_special_chars":
            url = url.replace("'", "%27")  # as a WHATWG URL parser sends it
        if "body" in vector:
            params: object = vector["body"]
        elif "params_multi" in vector:
            params = ImmutableMultiDict([(k, v) for k, v in vector["params_multi"]])
        else:
            params = ImmutableMultiDict(list(vector["params"].items()))
        result = verify_signature(token, url, params, vector["signature"])  # type: ignore[arg-type]
        assert result is vector["valid"], vector["name"]
        checked += 1
    assert checked == 15


async def test_valid_signature_is_answered(twilio: Twilio):
    reply = await twilio.sms("HELP")
    assert "STATUS" in reply


@pytest.mark.parametrize(
    "case",
    ["forged", "missing", "changed_body", "wrong_url", "wrong_token"],
)
async def test_bad_signatures_get_403_and_store_nothing(twilio: Twilio, app, case: str):
    params = sms_params("HELP")
    signature = twilio_signature(PUBLIC_URL + "/sms/twilio", params)
    if case == "forged":
        response = await twilio.post(params, signature="AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    elif case == "missing":
        response = await twilio.post(params, sign=False)
    elif case == "changed_body":
        changed = {**params, "Body": "STATUS 482133076634"}
        response = await twilio.post(changed, signature=signature)
    elif case == "wrong_url":
        response = await twilio.post(
            params, signature=twilio_signature("https://evil.example/sms/twilio", params)
        )
    else:
        from twilio.request_validator import RequestValidator

        bad = RequestValidator("another-token").compute_signature(
            PUBLIC_URL + "/sms/twilio", params
        )
        response = await twilio.post(params, signature=bad)
    assert response.status_code == 403
    async with app.state.runtime.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(InboundMessage))
    assert count == 0


async def test_real_shaped_webhook_bodies_are_answered(twilio: Twilio, app):
    data = json.loads(corpus("twilio", "webhook_examples.json").read_text(encoding="utf-8"))
    bodies = data["observed_raw_bodies"]
    assert bodies
    for example in bodies:
        pairs = parse_qsl(example["raw"], keep_blank_values=True)
        response = await twilio.post(pairs)
        assert response.status_code == 200, example["what"]
        assert response.headers["content-type"].startswith("application/xml")
        assert reply_text(response.text).strip(), example["what"]
    async with app.state.runtime.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(InboundMessage))
    assert count == len(bodies)


async def test_the_whole_form_is_kept_on_the_row_repeated_fields_as_lists(twilio: Twilio, app):
    params = list(sms_params("HELP", "+989121234567").items())
    params += [("MediaUrl0", "https://m.example/1"), ("Tag", "a"), ("Tag", ""), ("Tag", "c")]
    response = await twilio.post(params)
    assert response.status_code == 200
    async with app.state.runtime.sessions() as session:
        row = (await session.execute(select(InboundMessage))).scalar_one()
    assert row.raw["Tag"] == ["a", "", "c"]
    assert row.raw["MediaUrl0"] == "https://m.example/1"
    assert row.raw["Body"] == "HELP" and row.raw["MessageSid"] == dict(params)["MessageSid"]


async def test_same_message_sid_twice_one_row_same_reply(twilio: Twilio, app):
    params = sms_params("LANG en")
    first = await twilio.post(params)
    params_again = dict(params)
    second = await twilio.post(params_again)
    assert first.status_code == second.status_code == 200
    assert reply_text(first.text) == reply_text(second.text) == "Replies will now be in English."
    async with app.state.runtime.sessions() as session:
        inbound = await session.scalar(select(func.count()).select_from(InboundMessage))
        outbound = await session.scalar(select(func.count()).select_from(OutboundMessage))
        row = (await session.execute(select(InboundMessage))).scalar_one()
    assert inbound == 1
    assert outbound == 1
    assert row.attempts == 2


async def test_persian_status_request_end_to_end_reply_in_persian(twilio: Twilio):
    reply = await twilio.sms("وضعيت ۴۸۲۱ ۳۳۰۷ ۶۶۳۴")
    assert "۴۸۲۱ ۳۳۰۷ ۶۶۳۴" in reply
    assert "پیدا نشد" in reply


@pytest.mark.parametrize(
    "body, expected_status",
    [
        ("", 200),
        ("س" * 1600, 200),
        ("x" * 1600, 200),
        ("\x00\x01 HELP", 200),
        ("🙂🙂🙂", 200),
    ],
)
async def test_odd_bodies_get_a_clear_answer(twilio: Twilio, body: str, expected_status: int):
    response = await twilio.post(sms_params(body))
    assert response.status_code == expected_status
    assert reply_text(response.text).strip()


async def test_a_reply_quoting_control_characters_is_still_xml(twilio: Twilio):
    """A form's summary quotes the citizen's text answer; a control character in it
    (XML 1.0 has no place for one) made TwiML that did not parse: Twilio sent nothing."""
    sender = "+989121119999"
    for text in ["جدید ۶", "1435678911", "6", "12\x01/4\x1b5\ufffe", "1"]:
        await twilio.messages(text, sender)
    response = await twilio.post(sms_params("رد", sender))  # the optional mobile: the summary
    assert response.status_code == 200
    summary = reply_text(response.text)  # parses as XML
    assert "12/45" in summary


async def test_empty_body_says_it_was_empty(twilio: Twilio):
    assert "خالی" in await twilio.sms("")


async def test_missing_from_is_a_400_not_a_500(twilio: Twilio):
    params = sms_params("HELP")
    del params["From"]
    response = await twilio.post(params)
    assert response.status_code == 400
    assert "From" in response.text


async def test_missing_message_sid_is_a_400(twilio: Twilio):
    params = sms_params("HELP")
    del params["MessageSid"]
    response = await twilio.post(params)
    assert response.status_code == 400


async def test_malformed_form_body_is_a_4xx(client):
    body = b"Body=%FF%FE&From=%2B98"
    response = await client.post(
        "/sms/twilio",
        content=body,
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "x-twilio-signature": "x",
        },
    )
    assert 400 <= response.status_code < 500
    response = await client.post(
        "/sms/twilio", content=b'{"Body": "HELP"}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 415


async def test_oversized_form_is_refused(twilio: Twilio):
    response = await twilio.post(sms_params("x" * 70_000))
    assert response.status_code == 413


async def test_status_callback_updates_outbound_and_never_moves_back(twilio: Twilio, app):
    first = await twilio.post(sms_params("HELP"))
    assert 'action="https://gateway.city.example/sms/twilio/status?outbound=' in first.text
    async with app.state.runtime.sessions() as session:
        outbound = (await session.execute(select(OutboundMessage))).scalar_one()
    path = f"/sms/twilio/status?outbound={outbound.id}"
    sid = "SM" + "f" * 32
    for status in ("sent", "delivered", "sent"):
        response = await twilio.post(
            {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "0" * 32}, path
        )
        assert response.status_code == 204
    async with app.state.runtime.sessions() as session:
        outbound = (await session.execute(select(OutboundMessage))).scalar_one()
    assert outbound.status == "delivered"
    assert outbound.provider_id == sid
    forged = await twilio.post({"MessageSid": sid, "MessageStatus": "failed"}, path, sign=False)
    assert forged.status_code == 403


async def test_advanced_opt_out_records_stop_without_a_second_reply(twilio: Twilio, app):
    response = await twilio.post(sms_params("STOP", OptOutType="STOP"))
    assert response.status_code == 200
    assert reply_text(response.text) == ""
    from models.contacts import Contact

    async with app.state.runtime.sessions() as session:
        contact = (await session.execute(select(Contact))).scalar_one()
    assert contact.opted_out is True


async def test_a_client_gone_before_its_body_is_a_quiet_400(app, caplog):
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(_webhook_scope(b"", [(b"x-twilio-signature", b"x")]), receive, send)
    assert sent[0]["status"] == 400
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


async def test_a_query_that_is_not_utf8_is_a_403_not_a_500(app, caplog):
    """Raw bytes no client would percent-encode reach the signature check replaced: no
    URL Twilio signed holds them."""
    params = sms_params("HELP", "+989121234567")
    body = urlencode(params).encode()
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [(b"content-length", str(len(body)).encode()), (b"x-twilio-signature", b"forged")]
    await app(_webhook_scope(b"x=\xff", headers), receive, send)
    assert sent[0]["status"] == 403
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def _webhook_scope(query: bytes, headers: list[tuple[bytes, bytes]]) -> dict:
    """An ASGI scope of a form POST to the webhook, as a server hands it to the app."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/sms/twilio",
        "raw_path": b"/sms/twilio",
        "root_path": "",
        "query_string": query,
        "client": ("203.0.113.9", 1),
        "server": ("gateway", 80),
        "headers": [(b"content-type", b"application/x-www-form-urlencoded"), *headers],
    }
