"""The composed email, parsed back with the standard library: structure, encodings, escaping and
header safety."""

from __future__ import annotations

import email
import email.policy
import uuid
from email.message import EmailMessage

import pytest
from notifier.mail.messages import MailSender, compose, welcome_email
from notifier.mail.schemas import UserRegistered

SENDER = MailSender.parse("Gatehouse <no-reply@gatehouse.local>")


def event(**overrides: object) -> UserRegistered:
    data: dict[str, object] = {
        "event_id": uuid.uuid4(),
        "user_id": uuid.uuid4(),
        "email": "ann@example.com",
        "username": "ann_smith",
        "full_name": "Ann Smith",
    }
    data.update(overrides)
    return UserRegistered.model_validate(data)


def parsed(content: bytes) -> EmailMessage:
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert not message.defects
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None
    assert html is not None
    return text.get_content(), html.get_content()


def test_welcome_email_is_multipart_alternative_with_crlf_and_7bit_lines() -> None:
    registered = event()
    outgoing = welcome_email(registered, SENDER)

    assert outgoing.sender == "no-reply@gatehouse.local"
    assert outgoing.recipients == ("ann@example.com",)
    assert not outgoing.needs_smtputf8
    assert outgoing.content.isascii()
    lines = outgoing.content.split(b"\r\n")
    assert all(b"\n" not in line and b"\r" not in line for line in lines)
    assert max(len(line) for line in lines) <= 78

    message = parsed(outgoing.content)
    assert message.get_content_type() == "multipart/alternative"
    assert message["From"].addresses[0].display_name == "Gatehouse"
    assert message["To"].addresses[0].addr_spec == "ann@example.com"
    assert message["To"].addresses[0].display_name == "Ann Smith"
    assert message["Subject"] == "Welcome to Gatehouse"
    assert message["Message-ID"] == f"<{registered.event_id}.welcome@gatehouse.local>"
    assert message["X-Gatehouse-Event-Id"] == str(registered.event_id)
    assert message["Date"].datetime is not None
    text, html = parts(message)
    assert text.startswith("Hello Ann Smith,")
    assert "— The Gatehouse team" in text  # non-ASCII body text survives quoted-printable
    assert "<strong>ann_smith</strong>" in html


def test_non_ascii_display_names_are_encoded_words() -> None:
    outgoing = welcome_email(event(full_name="Zoë Ångström-Łukasz 山田"), SENDER)
    assert outgoing.content.isascii()
    message = parsed(outgoing.content)
    assert message["To"].addresses[0].display_name == "Zoë Ångström-Łukasz 山田"
    text, html = parts(message)
    assert "Hello Zoë Ångström-Łukasz 山田," in text
    assert "Zoë Ångström-Łukasz 山田" in html


@pytest.mark.parametrize(
    "full_name",
    [
        "Ann\r\nBcc: victim@example.com",
        "Ann\nSubject: pwned",
        'Ann" <evil@example.com>, "x',
        "Ann <evil@example.com>",
        "Ann, Bob",
        "Ann\x00\x1b[31m",
    ],
)
def test_display_names_cannot_inject_headers_or_recipients(full_name: str) -> None:
    outgoing = welcome_email(event(full_name=full_name), SENDER)
    message = parsed(outgoing.content)
    assert message["Bcc"] is None
    assert message["Subject"] == "Welcome to Gatehouse"
    [to] = message["To"].addresses
    assert to.addr_spec == "ann@example.com"
    assert outgoing.recipients == ("ann@example.com",)
    head = outgoing.content.split(b"\r\n\r\n", 1)[0]
    assert b"\x00" not in head
    assert b"\x1b" not in head


def test_html_part_escapes_user_data() -> None:
    outgoing = welcome_email(event(full_name="<script>alert(1)</script>", username="a&b"), SENDER)
    text, html = parts(parsed(outgoing.content))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a&amp;b" in html
    assert "Hello <script>alert(1)</script>," in text  # plain text is not HTML


def test_long_lines_and_mixed_line_endings_are_quoted_printable_and_crlf() -> None:
    long_line = "x" * 300 + " é"
    outgoing = compose(
        event_id=uuid.uuid4(),
        kind="test",
        sender=SENDER,
        recipient_name="Ann",
        recipient="ann@example.com",
        subject="Ünïcode subject",
        text=f"one\r\ntwo\rthree\n{long_line}\n",
        html=f"<p>{long_line}</p>",
    )
    lines = outgoing.content.split(b"\r\n")
    assert max(len(line) for line in lines) <= 78
    message = parsed(outgoing.content)
    assert message["Subject"] == "Ünïcode subject"
    text, html = parts(message)
    assert text.splitlines() == ["one", "two", "three", long_line]
    assert long_line in html


def test_internationalized_mailbox_needs_smtputf8() -> None:
    outgoing = welcome_email(event(email="zoë@exämple.com"), SENDER)
    assert outgoing.needs_smtputf8
    assert outgoing.recipients == ("zoë@exämple.com",)
    # With SMTPUTF8 (RFC 6532) the headers are UTF-8.
    message = email.message_from_string(
        outgoing.content.decode("utf-8"), policy=email.policy.SMTPUTF8
    )
    assert message["To"].addresses[0].addr_spec == "zoë@exämple.com"


def test_each_email_has_its_own_boundary() -> None:
    first, second = welcome_email(event(), SENDER), welcome_email(event(), SENDER)
    boundary = parsed(first.content).get_boundary()
    assert boundary is not None
    assert boundary != parsed(second.content).get_boundary()


@pytest.mark.parametrize(
    ("value", "header", "address"),
    [
        ("no-reply@gatehouse.local", "no-reply@gatehouse.local", "no-reply@gatehouse.local"),
        ("Gatehouse <a@b.example>", "Gatehouse <a@b.example>", "a@b.example"),
        ("Gâtehouse <a@b.example>", "=?utf-8?q?G=C3=A2tehouse?= <a@b.example>", "a@b.example"),
    ],
)
def test_sender_is_parsed_once(value: str, header: str, address: str) -> None:
    sender = MailSender.parse(value)
    assert (sender.header, sender.address) == (header, address)


@pytest.mark.parametrize("value", ["", "Gatehouse", "<>", "not an address"])
def test_sender_must_be_an_address(value: str) -> None:
    with pytest.raises(ValueError, match="not an email address"):
        MailSender.parse(value)
