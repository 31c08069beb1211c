"""Emails built from Jinja2 templates (autoescaped HTML, plain text alternative).

The templates are compiled once, at import. The message itself is composed directly as MIME bytes
rather than through `email.message.EmailMessage`: the standard library's header registry and
generator cost over a millisecond per message, more than everything else the notifier does for an
event. The structure is fixed and small — `multipart/alternative` with a plain text and an HTML
part, both UTF-8 and quoted-printable (7-bit safe, so no 8BITMIME needed) — and the only headers
carrying user data (`To`, and `From` from the settings) go through `email.utils.formataddr`, which
quotes specials and RFC 2047-encodes non-ASCII display names. Control characters never reach a
header. Tests parse the result back with the standard library's parser.
"""

from __future__ import annotations

import binascii
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, Template, select_autoescape

from notifier.mail.schemas import (
    AccountEvent,
    AccountLockedOut,
    EmailVerificationRequested,
    MfaNotice,
    PasswordReset,
    PasswordResetRequested,
    UserRegistered,
)

_templates = Environment(
    loader=PackageLoader("notifier.mail", "templates"),
    # HTML templates escape what they interpolate; the plain text part is not HTML.
    autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default=False),
    undefined=StrictUndefined,
    auto_reload=False,
    enable_async=False,
)
VERIFICATION_HOURS = 24
RESET_MINUTES = 30
MESSAGE_ID_DOMAIN = "gatehouse.local"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_LINE_BREAKS = re.compile(r"\r\n?")


def one_line(value: str) -> str:
    """A header value on one line: control characters become spaces."""
    return _CONTROL.sub(" ", value).strip()


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """A composed email: the SMTP envelope and the message bytes (CRLF line endings)."""

    event_id: uuid.UUID
    sender: str  # MAIL FROM
    recipients: tuple[str, ...]  # RCPT TO
    content: bytes

    @property
    def needs_smtputf8(self) -> bool:
        """True when an address is not ASCII (internationalized mailbox: SMTPUTF8)."""
        return not all(address.isascii() for address in (self.sender, *self.recipients))


@dataclass(frozen=True, slots=True)
class MailSender:
    """The `From` of every email, parsed once from `SMTP_FROM` ("Name <address>" or "address")."""

    header: str
    address: str

    @classmethod
    def parse(cls, value: str) -> MailSender:
        name, address = parseaddr(one_line(value))
        if "@" not in address:
            raise ValueError(f"not an email address: {value!r}")
        return cls(_address_header(name, address), address)


def _address_header(name: str, address: str) -> str:
    name = one_line(name)
    if not address.isascii():
        # An internationalized mailbox travels with SMTPUTF8 (RFC 6532): headers are UTF-8 too.
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{address}>' if name else address
    # formataddr folds an encoded-word with "\n "; the message uses CRLF throughout.
    return formataddr((name, address), charset="utf-8").replace("\n", "\r\n")


def _subject_header(subject: str) -> str:
    subject = one_line(subject)
    if subject.isascii():
        return subject
    return Header(subject, "utf-8").encode().replace("\n", "\r\n")


def _quoted_printable(text: str) -> bytes:
    body = _LINE_BREAKS.sub("\n", text).encode()
    return binascii.b2a_qp(body, istext=True).replace(b"\n", b"\r\n")


def _part(boundary: str, subtype: str, text: str) -> bytes:
    head = (
        f"--{boundary}\r\n"
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
    )
    return head.encode() + _quoted_printable(text) + b"\r\n"


def compose(
    *,
    event_id: uuid.UUID,
    kind: str,
    sender: MailSender,
    recipient_name: str,
    recipient: str,
    subject: str,
    text: str,
    html: str,
) -> OutgoingEmail:
    """A `multipart/alternative` email. The Message-ID is derived from the event, so a resend
    after an uncertain outcome can be recognised as the same message by the receiving side."""
    boundary = "=_" + secrets.token_hex(12)  # "=_" never occurs in quoted-printable text
    head = (
        f"From: {sender.header}\r\n"
        f"To: {_address_header(recipient_name, recipient)}\r\n"
        f"Subject: {_subject_header(subject)}\r\n"
        f"Date: {format_datetime(datetime.now(UTC))}\r\n"
        f"Message-ID: <{event_id}.{kind}@{MESSAGE_ID_DOMAIN}>\r\n"
        f"X-Gatehouse-Event-Id: {event_id}\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'
        "\r\n"
    )
    content = b"".join(
        (
            head.encode(),
            _part(boundary, "plain", text),
            _part(boundary, "html", html),
            f"--{boundary}--\r\n".encode(),
        )
    )
    return OutgoingEmail(event_id, sender.address, (recipient,), content)


@dataclass(frozen=True, slots=True)
class EmailTemplate:
    """One kind of email: its kind (the templates' name, part of the Message-ID, the metric's
    label), subject, and the plain text and HTML templates, compiled once."""

    kind: str
    subject: str
    text: Template
    html: Template

    @classmethod
    def load(cls, kind: str, subject: str) -> EmailTemplate:
        text = _templates.get_template(f"{kind}.txt.j2")
        return cls(kind, subject, text, _templates.get_template(f"{kind}.html.j2"))

    def render(
        self,
        event: AccountEvent,
        sender: MailSender,
        *,
        event_id: uuid.UUID | None = None,
        recipient: str | None = None,
        **context: object,
    ) -> OutgoingEmail:
        """The email to the account's address (or `recipient`), greeting its owner by name; the
        templates see `full_name`, `username`, `email` and `context`."""
        values = {
            "full_name": event.full_name,
            "username": event.username,
            "email": event.email,
            **context,
        }
        return compose(
            event_id=event.event_id if event_id is None else event_id,
            kind=self.kind,
            sender=sender,
            recipient_name=event.full_name,
            recipient=event.email if recipient is None else recipient,
            subject=self.subject,
            text=self.text.render(values),
            html=self.html.render(values),
        )


WELCOME = EmailTemplate.load("welcome", "Welcome to Gatehouse")
PASSWORD_RESET = EmailTemplate.load("password_reset", "Reset your Gatehouse password")
PASSWORD_CHANGED = EmailTemplate.load("password_changed", "Your Gatehouse password was changed")
EMAIL_VERIFICATION = EmailTemplate.load(
    "email_verification", "Confirm your email address for Gatehouse"
)
EMAIL_CHANGE_NOTICE = EmailTemplate.load(
    "email_change_notice", "Your Gatehouse email is being changed"
)
LOCKED_OUT = EmailTemplate.load("locked_out", "Sign-in to your Gatehouse account is locked")
# The MFA notices, by event type.
MFA_NOTICES = {
    "user.mfa_enabled": EmailTemplate.load(
        "mfa_enabled", "Two-step sign-in is on for your Gatehouse account"
    ),
    "user.mfa_disabled": EmailTemplate.load(
        "mfa_disabled", "Two-step sign-in is off for your Gatehouse account"
    ),
    "user.mfa_recovery_code_used": EmailTemplate.load(
        "mfa_recovery_code_used", "A recovery code was used to sign in to your Gatehouse account"
    ),
}


def reset_link(account_url: str, token: str) -> str:
    return f"{account_url}/reset-password?{urlencode({'token': token})}"


def verification_link(account_url: str, token: str) -> str:
    return f"{account_url}/verify-email?{urlencode({'token': token})}"


def welcome_email(
    event: UserRegistered | EmailVerificationRequested,
    sender: MailSender,
    account_url: str | None = None,
) -> OutgoingEmail:
    """The welcome; from a registration's verification event (with `account_url`), it carries
    the link that confirms the address."""
    link = (
        verification_link(account_url, event.token)
        if isinstance(event, EmailVerificationRequested) and account_url is not None
        else None
    )
    return WELCOME.render(event, sender, link=link, hours=VERIFICATION_HOURS)


def password_reset_email(
    event: PasswordResetRequested, sender: MailSender, account_url: str
) -> OutgoingEmail:
    """The reset link. The token appears in it and nowhere else in the message."""
    link = reset_link(account_url, event.token)
    return PASSWORD_RESET.render(event, sender, link=link, minutes=RESET_MINUTES)


def password_changed_email(event: PasswordReset, sender: MailSender) -> OutgoingEmail:
    return PASSWORD_CHANGED.render(event, sender)


def mfa_notice_email(event_type: str, event: MfaNotice, sender: MailSender) -> OutgoingEmail:
    return MFA_NOTICES[event_type].render(
        event, sender, recovery_codes_left=event.recovery_codes_left
    )


def verification_email(
    event: EmailVerificationRequested, sender: MailSender, account_url: str
) -> OutgoingEmail:
    """The link that confirms an address (a resend, or the new address of a change). The token
    appears in it and nowhere else in the message."""
    return EMAIL_VERIFICATION.render(
        event,
        sender,
        link=verification_link(account_url, event.token),
        hours=VERIFICATION_HOURS,
        change=event.reason == "change",
    )


def email_change_notice(
    event: EmailVerificationRequested, sender: MailSender, notice_id: uuid.UUID
) -> OutgoingEmail:
    """ "Your email is being changed", to the old address (never with the link)."""
    if event.previous_email is None:  # pragma: no cover - the caller sends it for changes only
        raise ValueError("not an email change")
    return EMAIL_CHANGE_NOTICE.render(
        event, sender, event_id=notice_id, recipient=event.previous_email, new_email=event.email
    )


def locked_out_email(
    event: AccountLockedOut, sender: MailSender, account_url: str
) -> OutgoingEmail:
    """The lockout notice, with a reset link (a reset ends the lock). The token appears in the
    link and nowhere else in the message."""
    return LOCKED_OUT.render(
        event,
        sender,
        until=event.locked_until.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
        link=reset_link(account_url, event.token),
        minutes=RESET_MINUTES,
    )
