"""TwiML as twilio's `MessagingResponse` writes it: `render_twiml` keeps each text's
<Message> and puts the status-callback URL in, and must write exactly what the library
writes, for any text and any URL."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twilio.twiml.messaging_response import MessagingResponse

from gateway.twilio_sms import render_twiml

TRICKY = ["", "HELP", 'a & b < c > "d"', "خط\nدوم\tو\rسوم", "citygate-status-callback", "]]>"]


def library(messages: list[tuple[str, str | None]]) -> str:
    response = MessagingResponse()
    for body, status_callback in messages:
        if status_callback:
            response.message(body, action=status_callback, method="POST")
        else:
            response.message(body)
    return str(response)


texts = st.one_of(st.sampled_from(TRICKY), st.text(max_size=200))
urls = st.one_of(
    st.none(),
    st.sampled_from(["https://city.example/sms/twilio/status?outbound=7", *TRICKY[1:]]),
    st.text(min_size=1, max_size=80),
)


@given(st.lists(st.tuples(texts, urls), max_size=4))
def test_render_twiml_writes_what_messaging_response_writes(
    messages: list[tuple[str, str | None]],
) -> None:
    assert render_twiml(messages) == library(messages)


def test_the_same_text_twice_gets_each_its_own_callback() -> None:
    twiml = render_twiml(
        [("HELP", "https://c.example/s?outbound=1"), ("HELP", "https://c.example/s?outbound=2")]
    )
    assert twiml.count('action="https://c.example/s?outbound=1"') == 1
    assert twiml.count('action="https://c.example/s?outbound=2"') == 1
