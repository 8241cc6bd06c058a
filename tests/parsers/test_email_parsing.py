"""Email parsing: raw bytes to the text a citizen wrote, and what never gets an answer.

Tables of small messages built here as bytes (no corpus files): Persian and Arabic
replies quoted by Gmail and Outlook, the charsets and aliases Persian and Arabic mail
arrives in, RFC 2047 subjects, HTML-only mail, attachments, the automatic-mail rules of
DESIGN.md ("Email in detail") and `Label: value` forms.
"""

from __future__ import annotations

import base64
import quopri
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.automail import automatic_reason, bounced_recipient, is_bounce
from parsers.email_forms import FormText, parse_form
from parsers.html_text import html_to_text
from parsers.mime import MAX_TEXT_CHARS, TRUNCATED, decode_bytes, parse_email
from parsers.quotes import REPLY_MARKER, new_part

DESK = "desk@city.example"
TOKEN = "cg.0123456789abcdef.0123456789ab"


def mail(
    body: bytes | str = b"hello",
    *,
    content_type: str | None = "text/plain; charset=utf-8",
    transfer: str | None = "8bit",
    headers: dict[str, str] | None = None,
    sender: str | None = "Ali <ali@example.org>",
) -> bytes:
    """A raw message: the usual headers, then `headers`, then the body as given."""
    lines = [f"From: {sender}"] if sender is not None else []
    lines += [f"To: {DESK}", "Subject: test", "Message-ID: <m1@example.org>"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if content_type is not None:
        lines += ["MIME-Version: 1.0", f"Content-Type: {content_type}"]
    if transfer is not None and content_type is not None:
        lines.append(f"Content-Transfer-Encoding: {transfer}")
    data = body.encode("utf-8") if isinstance(body, str) else body
    return "\r\n".join(lines).encode("ascii") + b"\r\n\r\n" + data


def with_subject(encoded: str) -> bytes:
    return f"From: ali@example.org\r\nSubject: {encoded}\r\n\r\nx\r\n".encode("ascii")


def b64(text: str, charset: str = "utf-8") -> str:
    return base64.b64encode(text.encode(charset)).decode("ascii")


# --------------------------------------------------------------------------- quotes


GMAIL_FA = "در تاریخ سه‌شنبه ۲۰ مرداد ۱۴۰۳، ساعت ۱۰:۰۰ شهرداری <desk@city.example> نوشت:"
GMAIL_EN = "On Tue, Aug 11, 2026 at 10:00 AM City Desk <desk@city.example> wrote:"
GMAIL_AR = "في الثلاثاء، 11 أغسطس 2026 في 10:00 ص، كتب مكتب البلدية <desk@city.example>:"
OUTLOOK_EN = "From: City Desk <desk@city.example>\nSent: Tuesday, August 11, 2026 10:00 AM\nTo: Ali"
OUTLOOK_FA = "از: شهرداری <desk@city.example>\nارسال شده: سه‌شنبه ۲۰ مرداد ۱۴۰۳\nبه: علی"
OUTLOOK_AR = "من: البلدية <desk@city.example>\nأرسل: الثلاثاء 11 أغسطس 2026\nإلى: علي"
NEW_FA = "کد پستی ملک: ۱۴۳۵۶۷۸۹۱۱\nبا تشکر"
NEW_AR = "نعم، أوافق على الطلب"

QUOTED_REPLIES = [
    ("gmail-fa", f"{NEW_FA}\n\n{GMAIL_FA}\n> خدمت: ۶\n> متن قبلی", NEW_FA),
    ("gmail-fa-unquoted", f"{NEW_FA}\n\n{GMAIL_FA}\n\nخدمت: ۶\nمتن قبلی", NEW_FA),
    ("gmail-fa-written", "سلام\n\nشهرداری در ۲۰ مرداد نوشته است:\n> قبلی", "سلام"),
    ("gmail-en", f"YES please\n\n{GMAIL_EN}\n> old text\n> more", "YES please"),
    (
        "gmail-en-wrapped",
        "YES\n\nOn Tue, Aug 11, 2026 at 10:00 AM City <\nc@x.org> wrote:\n> a",
        "YES",
    ),
    ("gmail-ar", f"{NEW_AR}\n\n{GMAIL_AR}\n> نص قديم", NEW_AR),
    ("gmail-ar-short", f"{NEW_AR}\n\nكتب مكتب البلدية:\n> نص قديم", NEW_AR),
    ("outlook-en", f"New text here\n\n{OUTLOOK_EN}\nSubject: RE: x\n\nold body", "New text here"),
    ("outlook-fa", f"{NEW_FA}\n\n{OUTLOOK_FA}\nموضوع: درخواست\n\nمتن قدیمی", NEW_FA),
    ("outlook-ar", f"{NEW_AR}\n\n{OUTLOOK_AR}\nالموضوع: طلب\n\nنص قديم", NEW_AR),
    ("outlook-date", "ok\n\nFrom: City Desk\nDate: Tue, 11 Aug 2026\nTo: Ali\n\nold", "ok"),
    ("original-message", "new words\n\n-----Original Message-----\nFrom: desk\nold", "new words"),
    ("original-fa", f"{NEW_FA}\n\n-----پیام اصلی-----\nاز: شهرداری\nقدیم", NEW_FA),
    ("original-ar", f"{NEW_AR}\n\n-----الرسالة الأصلية-----\nمن: البلدية\nقديم", NEW_AR),
    ("underscores", f"new words\n\n{'_' * 32}\n{OUTLOOK_EN}\n\nold", "new words"),
    ("underscores-alone", f"{NEW_FA}\n\n{'_' * 32}\nمتن قدیمی", NEW_FA),
    ("crlf", f"new text\r\n\r\n{GMAIL_EN}\r\n> old\r\n", "new text"),
    ("nested-quote", "new\n\n> a\n> > b\n>> c", "new"),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in QUOTED_REPLIES], ids=[c[0] for c in QUOTED_REPLIES]
)
def test_new_part_keeps_only_the_new_text(text, expected):
    assert new_part(text) == expected


MARKED_REPLIES = [
    ("marker", f"my answer\n\n{REPLY_MARKER} {TOKEN}\n\nour earlier reply", "my answer"),
    ("marker-quoted", f"خدمت: ۶\n\n> {REPLY_MARKER} {TOKEN}\n> پاسخ قبلی", "خدمت: ۶"),
    ("marker-mid-line", f"ok thanks {REPLY_MARKER} {TOKEN}\nold", "ok thanks"),
    # a client that mangled the marker's spacing still leaves "##- … citygate … -##"
    ("marker-mangled", "YES\n\n##-  citygate:  reply above this line  -##\nold", "YES"),
    # the marker wins over everything below it, even text that is not quoted
    ("marker-above-quote", f"OK\n{REPLY_MARKER}\nnew-looking line\n\n{GMAIL_EN}\n> x", "OK"),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in MARKED_REPLIES], ids=[c[0] for c in MARKED_REPLIES]
)
def test_our_reply_marker_cuts_the_quote(text, expected):
    assert new_part(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("STATUS 4821 3307 6634\n\n-- \nAli Rezaei\n0912 123 4567", "STATUS 4821 3307 6634"),
        ("وضعیت ۴۸۲۱۳۳۰۷۶۶۳۴\n\n--\nعلی رضایی\nتلفن ۰۹۱۲", "وضعیت ۴۸۲۱۳۳۰۷۶۶۳۴"),
        (f"{NEW_FA}\n-- \nعلی\n\n{GMAIL_FA}\n> قبلی", NEW_FA),
    ],
    ids=["en", "fa-no-space", "signature-and-quote"],
)
def test_signature_is_dropped(text, expected):
    assert new_part(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "قبلاً نوشتم:\nنشانی: خیابان ولیعصر",  # "I wrote:" is not "… wrote:"
        "نشانی: خیابان ولیعصر، پلاک ۱۲\nساعت 10:30 تماس بگیرید",
        "Address: Vali-Asr St.\n---\nmore",
        "From the office: nothing yet\nThanks",
    ],
    ids=["fa-first-person", "colons", "dashes", "from-without-sent"],
)
def test_plain_text_is_not_mistaken_for_a_quote(text):
    assert new_part(text) == text


@pytest.mark.parametrize("junk", [None, b"bytes", 12, ""])
def test_new_part_of_junk_is_empty(junk):
    assert new_part(junk) == ""


@pytest.mark.parametrize(
    ("new", "attribution"),
    [
        (NEW_FA, "در تاریخ سه‌شنبه ۲۰ مرداد ۱۴۰۳، ساعت ۱۰:۰۰ شهرداری <\ndesk@city.example> نوشت:"),
        (NEW_AR, "في الثلاثاء، 11 أغسطس 2026 في 10:00 ص، كتب مكتب البلدية <\ndesk@city.example>:"),
    ],
    ids=["fa", "ar"],
)
def test_wrapped_gmail_attribution_is_cut_whole(new, attribution):
    assert new_part(f"{new}\n\n{attribution}\n\n> قبلی") == new


def test_short_underscore_separator_is_cut():
    assert new_part(f"new words\n\n{'_' * 16}\n{OUTLOOK_EN}\n\nold") == "new words"


# --------------------------------------------------------------------------- charsets

PERSIAN_1256 = "سلام، مي‌خواهم وضعيت پرونده را بدانم. گچ، ژاله، کوچه"  # Arabic yeh: 1256 lacks ی
ARABIC = "مرحبا، ما هي حالة طلبي؟"
HEBREW = "שלום עולם"
KOREAN = "안녕하세요 서울시청"

BODY_CHARSETS = [
    # (declared charset, the codec that really made the bytes, text)
    ("windows-1256", "windows-1256", PERSIAN_1256),
    ("Windows-1256", "windows-1256", PERSIAN_1256),
    ("iso-8859-6", "iso-8859-6", ARABIC),
    ("iso-8859-6-i", "iso-8859-6", ARABIC),
    ("ISO-8859-6-I", "iso-8859-6", ARABIC),
    ("iso-8859-6-e", "iso-8859-6", ARABIC),
    ("iso-8859-8-i", "iso-8859-8", HEBREW),
    ("ks_c_5601-1987", "cp949", KOREAN),
    ("KS_C_5601-1987", "cp949", KOREAN),
    ("x-mac-arabic", "mac_arabic", ARABIC),
    ("utf-8", "utf-8", "سلام، وضعیت ۴۸۲۱ ۳۳۰۷ ۶۶۳۴ را می‌خواهم"),
]


@pytest.mark.parametrize(("declared", "codec", "text"), BODY_CHARSETS)
def test_declared_body_charset_is_decoded(declared, codec, text):
    raw = mail(text.encode(codec), content_type=f'text/plain; charset="{declared}"')
    assert parse_email(raw).text == text
    assert decode_bytes(text.encode(codec), declared) == text


@pytest.mark.parametrize(("declared", "codec", "text"), BODY_CHARSETS[:4])
def test_quoted_printable_and_base64_bodies_are_decoded(declared, codec, text):
    data = text.encode(codec)
    qp = mail(
        quopri.encodestring(data),
        content_type=f"text/plain; charset={declared}",
        transfer="quoted-printable",
    )
    b = mail(
        base64.encodebytes(data), content_type=f"text/plain; charset={declared}", transfer="base64"
    )
    assert parse_email(qp).text == text
    assert parse_email(b).text == text


def test_ks_c_5601_is_decoded_as_cp949():
    text = "똠방각하 안녕하세요"  # 똠 exists in cp949 only
    raw = mail(text.encode("cp949"), content_type="text/plain; charset=ks_c_5601-1987")
    assert parse_email(raw).text == text


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("سلام، وضعیت".encode(), "سلام، وضعیت"),
        ("سلام، وضعيت".encode("windows-1256"), "سلام، وضعيت"),
        (b"plain ascii", "plain ascii"),
    ],
    ids=["utf-8-bytes", "windows-1256-bytes", "ascii"],
)
@pytest.mark.parametrize("declared", ["x-no-such-charset", "unknown", "base64", "", None])
def test_unknown_charset_falls_back_without_raising(declared, data, expected):
    assert decode_bytes(data, declared) == expected
    content_type = "text/plain" if declared is None else f'text/plain; charset="{declared}"'
    assert parse_email(mail(data, content_type=content_type)).text == expected


@pytest.mark.parametrize("declared", ["undefined", "utf-8\x00"])
def test_a_charset_name_python_chokes_on_falls_back(declared):
    assert decode_bytes(b"hello", declared) == "hello"
    part = f'Content-Type: text/plain; charset="{declared}"\r\n\r\nhello'
    pdf = attachment_part("application/pdf", 'attachment; filename="a.pdf"', b"%PDF")
    parsed = parse_email(multipart(part, pdf))
    assert (parsed.text, len(parsed.attachments)) == ("hello", 1)


def test_a_wrong_declared_charset_falls_back():
    persian = "وضعيت پرونده"
    raw = mail(persian.encode("windows-1256"), content_type="text/plain; charset=utf-8")
    assert parse_email(raw).text == persian


@given(st.binary(max_size=200), st.sampled_from([None, "utf-8", "iso-8859-6", "x-bogus", "ascii"]))
@settings(max_examples=200, deadline=None)
def test_decode_bytes_never_raises(data, charset):
    assert isinstance(decode_bytes(data, charset), str)


# --------------------------------------------------------------------------- RFC 2047 subjects

SUBJECTS = [
    ("windows-1256-b", "=?WINDOWS-1256?B?5eHHIOXhxyDUzsjH0b8=?=", "هلا هلا شخبار؟"),
    ("windows-1256-q", "=?windows-1256?Q?=E6=D6=DA=ED=CA_4821?=", "وضعيت 4821"),
    ("iso-8859-6-q", "=?Iso-8859-6?Q?=E5=D1=CD=C8=C7 =C8=C7=E4=D9=C7=E4=E5?=", "مرحبا بالعالم"),
    ("iso-8859-6-lang", "=?Iso-8859-6*arabic?b?5dHNyMcgyMfk2cfk5Q==?=", "مرحبا بالعالم"),
    ("iso-8859-6-i-alias", f"=?iso-8859-6-i?B?{b64('مرحبا', 'iso-8859-6')}?=", "مرحبا"),
    (
        "utf-8-adjacent",
        "=?utf-8?B?2KfbjNmGINuM2qkg2YXYqtmGINiz2KfYr9mHINin2LPYqg==?= "
        "=?utf-8?B?2KfbjNmGINuM2qkg2YXYqtmGINiz2KfYr9mHINin2LPYqg==?= =?utf-8?B?2YbYr9is?=",
        "این یک متن ساده استاین یک متن ساده استندج",
    ),
    (
        "utf-8-folded",
        f"=?utf-8?B?{b64('وضعیت ')}?=\r\n =?utf-8?B?{b64('۴۸۲۱ ۳۳۰۷ ۶۶۳۴')}?=",
        "وضعیت ۴۸۲۱ ۳۳۰۷ ۶۶۳۴",
    ),
    ("mixed", f"Re: =?utf-8?B?{b64('درخواست')}?= 4821", "Re: درخواست 4821"),
    ("unknown-charset", f"=?x-no-such?B?{b64('سلام')}?=", "سلام"),
]


@pytest.mark.parametrize(
    ("encoded", "expected"), [c[1:] for c in SUBJECTS], ids=[c[0] for c in SUBJECTS]
)
def test_rfc2047_subject_is_decoded(encoded, expected):
    assert parse_email(with_subject(encoded)).subject == expected


def test_subject_keeps_hotmails_trailing_rtl_mark_on_one_line():
    encoded = (
        "=?windows-1256?Q?RE:_HVR-1500_tuner_seems_to_be_recognized=2C_but_wont_tu?=\r\n"
        " =?windows-1256?Q?rn_on.=FE?="
    )
    assert parse_email(with_subject(encoded)).subject == (
        "RE: HVR-1500 tuner seems to be recognized, but wont turn on.\u200f"
    )


def test_raw_utf8_headers_are_decoded():
    raw = "From: علی رضایی <ali@example.org>\r\nSubject: وضعیت ۴۸۲۱\r\n\r\nx".encode()
    parsed = parse_email(raw)
    assert (parsed.from_name, parsed.subject) == ("علی رضایی", "وضعیت ۴۸۲۱")


# --------------------------------------------------------------------------- HTML

HTML_PAGE = (
    "<html><head><title>T</title><style>p{color:red}</style></head><body>"
    "<div dir='rtl'><p>وضعیت&nbsp;۴۸۲۱</p><p>خط دوم<br>سوم &amp; چهارم</p></div>"
    "<script>alert('x')</script></body></html>"
)


def test_html_only_mail_becomes_text():
    raw = mail(
        base64.encodebytes(HTML_PAGE.encode()),
        content_type="text/html; charset=utf-8",
        transfer="base64",
    )
    parsed = parse_email(raw)
    assert parsed.html_only
    assert parsed.text == "وضعیت ۴۸۲۱\n\nخط دوم\nسوم & چهارم"


def test_html_only_mail_in_windows_1256():
    raw = mail(
        "<p>وضعيت</p><p>4821</p>".encode("windows-1256"),
        content_type="text/html; charset=windows-1256",
    )
    assert parse_email(raw).text == "وضعيت\n\n4821"


def test_plain_text_is_preferred_to_html():
    body = (
        "--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nمتن ساده\r\n"
        "--B\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>متن HTML</p>\r\n--B--\r\n"
    )
    parsed = parse_email(
        mail(body, content_type="multipart/alternative; boundary=B", transfer=None)
    )
    assert (parsed.text, parsed.html_only) == ("متن ساده", False)


GMAIL_HTML_REPLY = (
    '<div dir="rtl">کد پستی ملک: ۱۴۳۵۶۷۸۹۱۱<br></div><br>'
    '<div class="gmail_quote"><div dir="rtl" class="gmail_attr">' + GMAIL_FA + "<br></div>"
    '<blockquote class="gmail_quote" style="margin:0 0 0 .8ex">'
    "<div>خدمت: ۶</div><div>پاسخ قبلی ما</div></blockquote></div>"
)
OUTLOOK_HTML_REPLY = (
    '<div dir="rtl"><p class="MsoNormal">نعم، أوافق على الطلب</p></div>'
    '<div style="border-top:solid #E1E1E1 1.0pt"><p class="MsoNormal"><b>من:</b> البلدية '
    "&lt;desk@city.example&gt;<br><b>أرسل:</b> الثلاثاء 11 أغسطس 2026<br>"
    "<b>إلى:</b> علي</p></div><p>نص قديم</p>"
)
BLOCKQUOTE_ONLY = "<p>OK</p><blockquote type='cite'><p>old <b>bold</b></p>old line 2</blockquote>"


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        (GMAIL_HTML_REPLY, "کد پستی ملک: ۱۴۳۵۶۷۸۹۱۱"),
        (OUTLOOK_HTML_REPLY, NEW_AR),
        (BLOCKQUOTE_ONLY, "OK"),
    ],
    ids=["gmail-fa", "outlook-ar", "blockquote"],
)
def test_html_reply_quotes_are_dropped_by_new_part(html, expected):
    parsed = parse_email(mail(html, content_type="text/html; charset=utf-8"))
    assert parsed.html_only
    assert new_part(parsed.text) == expected


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>a</p><p>b</p>", "a\n\nb"),
        ("a<br>b<BR>c", "a\nb\nc"),
        ("<blockquote>old<br>older</blockquote>", "> old\n> older"),
        ("<blockquote>old<blockquote>older</blockquote></blockquote>new", "> old\n> older\n\nnew"),
        ("<ul><li>one</li><li>two</li></ul>", "one\n\ntwo"),
        ("x&nbsp;&nbsp;y &lt;z&gt; &#1740;", "x y <z> ی"),
        ("<style>p {}</style><script>1</script><p>only</p>", "only"),
        ("<p>unclosed <b>tags", "unclosed tags"),
        ("", ""),
    ],
)
def test_html_to_text(html, expected):
    assert html_to_text(html) == expected


def test_self_closing_br_is_one_line_break():
    assert html_to_text("a<br/>b<br />c") == "a\nb\nc"


# --------------------------------------------------------------------------- NULs, length


def test_nuls_are_stripped():
    raw = mail("وضعیت\x00 ۴۸۲۱\x00".encode(), headers={"X-Note": "a\x00b"})
    raw = raw.replace(b"Subject: test", b"Subject: te\x00st")
    parsed = parse_email(raw)
    assert parsed.text == "وضعیت ۴۸۲۱"
    assert parsed.subject == "test"
    assert all("\x00" not in value for _, value in parsed.headers)


def test_an_overlong_body_is_cut_with_a_visible_marker():
    parsed = parse_email(mail("ب" * (MAX_TEXT_CHARS + 5000)))
    assert parsed.text == "ب" * MAX_TEXT_CHARS + TRUNCATED
    assert "message cut" in parsed.text


def test_the_cut_follows_max_text_chars_and_applies_to_html():
    assert parse_email(mail("a" * 101), max_text_chars=100).text.endswith(TRUNCATED)
    assert parse_email(mail("a" * 100), max_text_chars=100).text == "a" * 100
    html = mail("<p>" + "x" * 500 + "</p>", content_type="text/html; charset=utf-8")
    assert parse_email(html, max_text_chars=100).text == "x" * 100 + TRUNCATED


# --------------------------------------------------------------------------- attachments

RFC2231_NAME = (
    "filename*0*=utf-8''%D9%86%D9%82%D8%B4%D9%87%20%D8%B3%D8%A7%D8%AE%D8%AA%D9%85;\r\n"
    " filename*1*=%D8%A7%D9%86.pdf"
)


def multipart(*parts: str) -> bytes:
    body = "".join(f"--B\r\n{part}\r\n" for part in parts) + "--B--\r\n"
    return mail(body, content_type="multipart/mixed; boundary=B", transfer=None)


def attachment_part(content_type: str, disposition: str | None, data: bytes) -> str:
    lines = [f"Content-Type: {content_type}", "Content-Transfer-Encoding: base64"]
    if disposition:
        lines.append(f"Content-Disposition: {disposition}")
    return "\r\n".join(lines) + "\r\n\r\n" + base64.b64encode(data).decode()


TEXT_PART = "Content-Type: text/plain; charset=utf-8\r\n\r\nنقشه پیوست است"


@pytest.mark.parametrize(
    ("content_type", "disposition", "filename"),
    [
        ("application/pdf", f"attachment;\r\n {RFC2231_NAME}", "نقشه ساختمان.pdf"),
        ("application/pdf", f'attachment; filename="=?UTF-8?B?{b64("نقشه.pdf")}?="', "نقشه.pdf"),
        ("image/png", 'attachment; filename="plan.png"', "plan.png"),
        ('image/jpeg; name="front.jpg"', None, "front.jpg"),
        ("image/vnd.dwg", 'inline; filename="site.dwg"', "site.dwg"),
        ("image/jpeg", None, "attachment"),  # an inline image with no name
        ("text/plain; charset=utf-8", 'attachment; filename="notes.txt"', "notes.txt"),
    ],
    ids=["rfc2231-persian", "rfc2047-persian", "plain", "ctype-name", "inline", "no-name", "text"],
)
def test_attachments_are_extracted(content_type, disposition, filename):
    data = b"%PDF-1.4 \x00\xff binary"
    parsed = parse_email(multipart(TEXT_PART, attachment_part(content_type, disposition, data)))
    assert parsed.text == "نقشه پیوست است"
    [attachment] = parsed.attachments
    assert (attachment.filename, attachment.data, attachment.size) == (filename, data, len(data))
    assert attachment.content_type == content_type.split(";")[0]


def test_several_attachments_keep_their_order():
    parsed = parse_email(
        multipart(
            TEXT_PART,
            attachment_part("application/pdf", 'attachment; filename="a.pdf"', b"1"),
            attachment_part("image/png", 'attachment; filename="b.png"', b"22"),
        )
    )
    assert [(a.filename, a.content_type, a.size) for a in parsed.attachments] == [
        ("a.pdf", "application/pdf", 1),
        ("b.png", "image/png", 2),
    ]


def test_an_attached_message_is_not_part_of_the_text():
    inner = "Content-Type: message/rfc822\r\n\r\nFrom: x@y.org\r\nSubject: old\r\n\r\nخدمت: ۳"
    parsed = parse_email(multipart(TEXT_PART, inner))
    assert parsed.text == "نقشه پیوست است"


# --------------------------------------------------------------------------- structure


def test_a_message_without_content_type_is_plain_text():
    raw = mail("وضعیت ۴۸۲۱".encode(), content_type=None)
    parsed = parse_email(raw)
    assert (parsed.content_type, parsed.text, parsed.html_only) == (
        "text/plain",
        "وضعیت ۴۸۲۱",
        False,
    )
    assert parsed.attachments == ()


def test_message_ids_for_threading():
    raw = mail(
        headers={
            "In-Reply-To": "<cg.1.2@city.example>",
            "References": "<a@x.org>\r\n <cg.1.2@city.example>",
        }
    )
    parsed = parse_email(raw)
    assert parsed.message_id == "<m1@example.org>"
    assert parsed.in_reply_to == ("<cg.1.2@city.example>",)
    assert parsed.references == ("<a@x.org>", "<cg.1.2@city.example>")
    assert parsed.header("TO") == DESK


FROM_HEADERS = [
    (
        f"=?utf-8?b?{b64('علی رضایی')}?= <Ali.Rezaei@EXAMPLE.ORG>",
        "ali.rezaei@example.org",
        "علی رضایی",
    ),
    (f'"=?utf-8?b?{b64("مریم")}?=" <MARYAM@Example.org>', "maryam@example.org", "مریم"),
    (
        f"=?windows-1256?b?{b64('علي', 'windows-1256')}?= <ali@example.org>",
        "ali@example.org",
        "علي",
    ),
    ('"Rezaei, Ali" <ALI@EXAMPLE.ORG>', "ali@example.org", "Rezaei, Ali"),
    ("ALI@Example.ORG (Ali)", "ali@example.org", ""),
    ("ALI@EXAMPLE.ORG", "ali@example.org", ""),
    ("<ali@example.org>", "ali@example.org", ""),
    ("ali@example.org, other@example.org", "ali@example.org", ""),
]


@pytest.mark.parametrize(("header", "address", "name"), FROM_HEADERS)
def test_from_header_variants(header, address, name):
    parsed = parse_email(mail(sender=header))
    assert (parsed.from_address, parsed.from_name) == (address, name)


def test_no_from_header_has_no_address():
    assert parse_email(mail(sender=None)).from_address is None


def test_a_from_without_an_address_has_no_address():
    assert parse_email(mail(sender="not an address")).from_address is None


@given(st.binary(max_size=400))
@settings(max_examples=150, deadline=None)
def test_parse_email_never_raises(junk):
    parsed = parse_email(mail(junk, content_type="text/plain; charset=iso-8859-6-i") + junk)
    assert "\x00" not in parsed.text


# --------------------------------------------------------------------------- automatic mail

DSN = (
    "--B\r\nContent-Type: text/plain\r\n\r\nDelivery to gone@example.org failed.\r\n"
    "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
    "Reporting-MTA: dns; mx.example.org\r\n\r\n"
    "Final-Recipient: rfc822; Gone@Example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n--B--\r\n"
)
REPORT = "multipart/report; report-type=delivery-status; boundary=B"


def reason_of(raw: bytes, our_address: str | None = DESK) -> str | None:
    parsed = parse_email(raw)
    headers = dict(reversed(parsed.headers))  # the first of a repeated header wins
    return automatic_reason(headers, parsed.from_address, parsed.content_type, our_address)


AUTOMATIC = [
    ("auto-replied", mail(headers={"Auto-Submitted": "auto-replied"}), "auto-submitted"),
    ("auto-generated", mail(headers={"Auto-Submitted": "auto-generated"}), "auto-submitted"),
    ("auto-notified", mail(headers={"Auto-Submitted": "Auto-Notified; owner=x"}), "auto-submitted"),
    ("bulk", mail(headers={"Precedence": "bulk"}), "precedence"),
    ("Bulk", mail(headers={"Precedence": "Bulk"}), "precedence"),
    ("junk", mail(headers={"Precedence": "junk"}), "precedence"),
    ("list", mail(headers={"Precedence": "list"}), "precedence"),
    ("auto_reply", mail(headers={"Precedence": "auto_reply"}), "precedence"),
    ("x-autoreply", mail(headers={"X-Autoreply": "yes"}), "x-autoreply"),
    ("X-AutoReply", mail(headers={"X-AutoReply": "YES"}), "x-autoreply"),
    ("x-autorespond", mail(headers={"X-Autorespond": "1"}), "x-autorespond"),
    ("x-autogenerated", mail(headers={"X-AutoGenerated": "Reply"}), "x-autogenerated"),
    ("x-auto-response-suppress", mail(headers={"X-Auto-Response-Suppress": "All"}), "x-auto"),
    ("list-id", mail(headers={"List-Id": "<citizens.lists.example>"}), "list"),
    ("list-unsubscribe", mail(headers={"List-Unsubscribe": "<mailto:u@l.example>"}), "list"),
    ("empty-return-path", mail(headers={"Return-Path": "<>"}), "return-path"),
    ("mailer-daemon", mail(sender="MAILER-DAEMON@mx.example.org (Mail Delivery System)"), "system"),
    (
        "mailer-daemon-named",
        mail(sender="Mail Delivery Subsystem <Mailer-Daemon@mx.example.org>"),
        "system",
    ),
    ("postmaster", mail(sender='"Postmaster" <postmaster@example.org>'), "system"),
    ("dsn", mail(DSN, content_type=REPORT, transfer=None, sender="mx@example.org"), "report"),
    ("our-own", mail(sender=f"City Desk <{DESK}>"), "our own"),
    ("our-own-upper", mail(sender="DESK@City.Example"), "our own"),
    ("no-sender", mail(sender=None), "sender"),
]


@pytest.mark.parametrize(("raw", "why"), [c[1:] for c in AUTOMATIC], ids=[c[0] for c in AUTOMATIC])
def test_automatic_mail_has_a_reason(raw, why):
    reason = reason_of(raw)
    assert reason is not None
    assert why in reason


PERSONAL = [
    ("plain", mail()),
    ("auto-submitted-no", mail(headers={"Auto-Submitted": "no"})),
    ("auto-submitted-No", mail(headers={"Auto-Submitted": "No"})),
    ("precedence-normal", mail(headers={"Precedence": "first-class"})),
    ("return-path", mail(headers={"Return-Path": "<ali@example.org>"})),
    ("persian-name", mail(sender=f"=?utf-8?b?{b64('علی')}?= <ali@example.org>")),
    ("reply-to-us", mail(headers={"In-Reply-To": "<cg.1.2@city.example>", "To": DESK})),
]


@pytest.mark.parametrize("raw", [c[1] for c in PERSONAL], ids=[c[0] for c in PERSONAL])
def test_a_persons_mail_has_no_reason(raw):
    assert reason_of(raw) is None


def test_without_our_address_only_the_other_rules_apply():
    assert reason_of(mail(sender=DESK), our_address=None) is None


def test_unqualified_mailer_daemon_is_automatic():
    raw = mail(sender="Mail Delivery Subsystem <MAILER-DAEMON>")
    parsed = parse_email(raw)
    assert reason_of(raw) is not None
    assert is_bounce(dict(parsed.headers), parsed.from_address, parsed.content_type)


@pytest.mark.parametrize(
    ("raw", "bounce"),
    [
        (mail(DSN, content_type=REPORT, transfer=None, sender="mx@example.org"), True),
        (mail(sender="MAILER-DAEMON@mx.example.org"), True),
        (mail(sender="postmaster@example.org"), True),
        (mail(headers={"Auto-Submitted": "auto-replied"}), False),
        (mail(), False),
    ],
    ids=["dsn", "mailer-daemon", "postmaster", "auto-reply", "plain"],
)
def test_is_bounce(raw, bounce):
    parsed = parse_email(raw)
    assert is_bounce(dict(parsed.headers), parsed.from_address, parsed.content_type) is bounce


@pytest.mark.parametrize(
    ("text", "recipient"),
    [
        (DSN, "gone@example.org"),
        ("Final-Recipient: RFC822; <Gone@Example.org>\n", "gone@example.org"),
        ("Final-Recipient: rfc822;gone@example.org", "gone@example.org"),
        ("Reporting-MTA: dns; mx\n\nAction: failed\n", None),
        ("", None),
    ],
    ids=["dsn", "angle-brackets", "no-space", "no-recipient", "empty"],
)
def test_bounced_recipient(text, recipient):
    assert bounced_recipient(text) == recipient


def test_bounced_recipient_from_a_whole_raw_dsn():
    raw = mail(DSN, content_type=REPORT, transfer=None, sender="MAILER-DAEMON@mx.example.org")
    assert bounced_recipient(raw.decode("utf-8", "replace")) == "gone@example.org"


# --------------------------------------------------------------------------- forms


def field(key: str, fa: str, en: str) -> SimpleNamespace:
    return SimpleNamespace(
        key=key, label=SimpleNamespace(get=lambda lang: fa if lang == "fa" else en)
    )


FIELDS = [
    field("postal_code", "کد پستی ملک", "Property postal code"),
    field("district", "منطقه شهرداری", "Municipal district"),
    field("address", "نشانی", "Address"),
    field("floors", "تعداد طبقه‌ها", "Number of floors"),  # a label with a ZWNJ
    field("has_permit", "ساختمان پروانه دارد؟", "Does the building have a permit?"),
    field("owner_national_id", "کد ملی مالک", "Owner's national ID"),
]

SINGLE_ANSWERS = [
    ("fa", "کد پستی ملک: ۱۴۳۵۶۷۸۹۱۱", "postal_code", "۱۴۳۵۶۷۸۹۱۱"),
    ("fa-arabic-letters", "كد پستي ملك: ۱۴۳۵۶۷۸۹۱۱", "postal_code", "۱۴۳۵۶۷۸۹۱۱"),
    ("fa-zwnj-typed", "کد\u200cپستی\u200cملک: 1435678911", "postal_code", "1435678911"),
    ("fa-no-spaces", "کدپستی ملک : 1435678911", "postal_code", "1435678911"),
    ("fa-label-zwnj", "تعداد طبقه\u200cها: ۳", "floors", "۳"),
    ("fa-label-zwnj-as-space", "تعداد طبقه ها: ۳", "floors", "۳"),
    ("fa-label-zwnj-dropped", "تعداد طبقهها: ۳", "floors", "۳"),
    ("fa-question-mark", "ساختمان پروانه دارد؟: بله", "has_permit", "بله"),
    ("fa-fullwidth-colon", "نشانی： خیابان ولیعصر", "address", "خیابان ولیعصر"),
    ("en", "Property postal code: 1435678911", "postal_code", "1435678911"),
    ("en-upper", "MUNICIPAL DISTRICT: 6", "district", "6"),
    ("en-apostrophe", "Owner's national ID: 0012345678", "owner_national_id", "0012345678"),
    ("key", "postal_code: 1435678911", "postal_code", "1435678911"),
    ("key-upper", "OWNER_NATIONAL_ID: 0012345678", "owner_national_id", "0012345678"),
    ("numbered-fa", "1) کد پستی ملک: ۱۴۳۵۶۷۸۹۱۱", "postal_code", "۱۴۳۵۶۷۸۹۱۱"),
    ("numbered-persian-digit", "۲) نشانی: خیابان", "address", "خیابان"),
    ("numbered-dot", "3. Address: Vali-Asr", "address", "Vali-Asr"),
    ("numbered-dash", "12- Municipal district: 6", "district", "6"),
    ("bullet-dash", "- Property postal code: 1435678911", "postal_code", "1435678911"),
    ("bullet-star", "* Address: Vali-Asr", "address", "Vali-Asr"),
    ("bullet-dot", "• نشانی: ولیعصر", "address", "ولیعصر"),
    ("colon-in-value", "Address: Vali-Asr St., Unit: 4", "address", "Vali-Asr St., Unit: 4"),
    ("spaces", "  Address  :   Vali-Asr   ", "address", "Vali-Asr"),
]


@pytest.mark.parametrize(
    ("text", "key", "value"), [c[1:] for c in SINGLE_ANSWERS], ids=[c[0] for c in SINGLE_ANSWERS]
)
def test_a_label_is_recognised(text, key, value):
    assert parse_form(text, FIELDS) == FormText(None, {key: value})


@pytest.mark.parametrize(
    ("line", "service"),
    [
        ("Service: 6", "6"),
        ("service : land_use", "land_use"),
        ("خدمت: ۶", "۶"),
        ("شماره خدمت: ۶", "۶"),
        ("Service number: 6", "6"),
        ("فرم: ۶", "۶"),
        ("Service:", None),
    ],
)
def test_the_service_line(line, service):
    assert parse_form(f"سلام\n{line}\nنشانی: ولیعصر", FIELDS) == FormText(
        service, {"address": "ولیعصر"}
    )


FORM = """سلام،
لطفاً این درخواست را ثبت کنید: ممنون

خدمت: ۶
1) کد پستی ملک: ۱۴۳۵۶-۷۸۹۱۱
2) نشانی: خیابان ولیعصر
کوچه ۱۲
واحد: ۴
3) Municipal district:
6
- Does the building have a permit?: yes
"""


def test_a_whole_form():
    assert parse_form(FORM, FIELDS) == FormText(
        "۶",
        {
            "postal_code": "۱۴۳۵۶-۷۸۹۱۱",
            # "واحد:" is no label: it belongs to the address above it
            "address": "خیابان ولیعصر\nکوچه ۱۲\nواحد: ۴",
            "district": "6",
            "has_permit": "yes",
        },
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello,\nDate: tomorrow\nAddress: x", {"address": "x"}),  # before any label: ignored
        ("Address: a\nb\nc\nPostal_code: 1", {"address": "a\nb\nc", "postal_code": "1"}),
        ("Address: a\nb\n\nبا سپاس\nعلی", {"address": "a\nb"}),  # a blank line ends it
        ("Address:\nVali-Asr\nno. 12\n", {"address": "Vali-Asr\nno. 12"}),
        ("Address: a\nخدمت: ۶\nmore text", {"address": "a"}),  # the service line ends a value
        ("Address: first\nAddress: second", {"address": "second"}),
        ("ساعت 10:30\nنشانی: ولیعصر", {"address": "ولیعصر"}),
        ("Unknown: x\nOther: y", {}),
    ],
    ids=[
        "preamble",
        "multi-line",
        "blank-line-ends",
        "value-below",
        "service-ends",
        "repeat",
        "time",
        "unknown",
    ],
)
def test_values_run_until_the_next_label(text, expected):
    assert parse_form(text, FIELDS).answers == expected


def test_form_of_junk():
    assert parse_form(None, FIELDS) == FormText(None)
    assert parse_form("", FIELDS) == FormText(None)
    assert parse_form("خدمت: ۶", []) == FormText("۶")


def test_form_read_from_the_new_part_of_a_windows_1256_reply():
    body = (
        # windows-1256 has no Persian yeh: senders' software writes the Arabic one
        "خدمت: 6\r\nنشاني: خيابان وليعصر\r\nکوچه 12\r\n\r\n"
        "-----Original Message-----\r\nFrom: desk@city.example\r\nنشاني: old\r\n"
    )
    raw = mail(body.encode("windows-1256"), content_type="text/plain; charset=windows-1256")
    form = parse_form(new_part(parse_email(raw).text), FIELDS)
    assert form == FormText("6", {"address": "خيابان وليعصر\nکوچه 12"})


@given(st.text(max_size=300))
@settings(max_examples=200, deadline=None)
def test_parse_form_and_new_part_never_raise(text):
    assert isinstance(parse_form(text, FIELDS), FormText)
    assert isinstance(new_part(text), str)
