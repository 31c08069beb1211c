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

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from notifier.mail.schemas import (
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
_WELCOME_TEXT = _templates.get_template("welcome.txt.j2")
_WELCOME_HTML = _templates.get_template("welcome.html.j2")
_RESET_TEXT = _templates.get_template("password_reset.txt.j2")
_RESET_HTML = _templates.get_template("password_reset.html.j2")
_CHANGED_TEXT = _templates.get_template("password_changed.txt.j2")
_CHANGED_HTML = _templates.get_template("password_changed.html.j2")
# The MFA notices: the template's name (= the email's kind) and its subject, by event type.
MFA_NOTICES = {
    "user.mfa_enabled": ("mfa_enabled", "Two-step sign-in is on for your Gatehouse account"),
    "user.mfa_disabled": ("mfa_disabled", "Two-step sign-in is off for your Gatehouse account"),
    "user.mfa_recovery_code_used": (
        "mfa_recovery_code_used",
        "A recovery code was used to sign in to your Gatehouse account",
    ),
}
_LOCKED_TEXT = _templates.get_template("locked_out.txt.j2")
_LOCKED_HTML = _templates.get_template("locked_out.html.j2")
_MFA_TEMPLATES = {
    kind: (_templates.get_template(f"{kind}.txt.j2"), _templates.get_template(f"{kind}.html.j2"))
    for kind, _ in MFA_NOTICES.values()
}
_VERIFY_TEXT = _templates.get_template("email_verification.txt.j2")
_VERIFY_HTML = _templates.get_template("email_verification.html.j2")
_NOTICE_TEXT = _templates.get_template("email_change_notice.txt.j2")
_NOTICE_HTML = _templates.get_template("email_change_notice.html.j2")
WELCOME_SUBJECT = "Welcome to Gatehouse"
RESET_SUBJECT = "Reset your Gatehouse password"
CHANGED_SUBJECT = "Your Gatehouse password was changed"
VERIFY_SUBJECT = "Confirm your email address for Gatehouse"
NOTICE_SUBJECT = "Your Gatehouse email is being changed"
VERIFICATION_HOURS = 24
LOCKED_SUBJECT = "Sign-in to your Gatehouse account is locked"
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
    context = {
        "full_name": event.full_name,
        "username": event.username,
        "email": event.email,
        "link": link,
        "hours": VERIFICATION_HOURS,
    }
    return compose(
        event_id=event.event_id,
        kind="welcome",
        sender=sender,
        recipient_name=event.full_name,
        recipient=event.email,
        subject=WELCOME_SUBJECT,
        text=_WELCOME_TEXT.render(context),
        html=_WELCOME_HTML.render(context),
    )


def reset_link(account_url: str, token: str) -> str:
    return f"{account_url}/reset-password?{urlencode({'token': token})}"


def password_reset_email(
    event: PasswordResetRequested, sender: MailSender, account_url: str
) -> OutgoingEmail:
    """The reset link. The token appears in it and nowhere else in the message."""
    context = {
        "full_name": event.full_name,
        "username": event.username,
        "link": reset_link(account_url, event.token),
        "minutes": 30,
    }
    return compose(
        event_id=event.event_id,
        kind="password_reset",
        sender=sender,
        recipient_name=event.full_name,
        recipient=event.email,
        subject=RESET_SUBJECT,
        text=_RESET_TEXT.render(context),
        html=_RESET_HTML.render(context),
    )


def password_changed_email(event: PasswordReset, sender: MailSender) -> OutgoingEmail:
    context = {"full_name": event.full_name, "username": event.username}
    return compose(
        event_id=event.event_id,
        kind="password_changed",
        sender=sender,
        recipient_name=event.full_name,
        recipient=event.email,
        subject=CHANGED_SUBJECT,
        text=_CHANGED_TEXT.render(context),
        html=_CHANGED_HTML.render(context),
    )


def mfa_notice_email(event_type: str, event: MfaNotice, sender: MailSender) -> OutgoingEmail:
    kind, subject = MFA_NOTICES[event_type]
    text, html = _MFA_TEMPLATES[kind]
    context = {
        "full_name": event.full_name,
        "username": event.username,
        "recovery_codes_left": event.recovery_codes_left,
    }
    return compose(
        event_id=event.event_id,
        kind=kind,
        sender=sender,
        recipient_name=event.full_name,
        recipient=event.email,
        subject=subject,
        text=text.render(context),
        html=html.render(context),
    )


def verification_link(account_url: str, token: str) -> str:
    return f"{account_url}/verify-email?{urlencode({'token': token})}"


def verification_email(
    event: EmailVerificationRequested, sender: MailSender, account_url: str
) -> OutgoingEmail:
    """The link that confirms an address (a resend, or the new address of a change). The token
    appears in it and nowhere else in the message."""
    context = {
        "full_name": event.full_name,
        "username": event.username,
        "email": event.email,
        "link": verification_link(account_url, event.token),
        "hours": VERIFICATION_HOURS,
        "change": event.reason == "change",
    }
    return compose(
        event_id=event.event_id,
        kind="email_verification",
        sender=sender,
        recipient_name=event.full_name,
        recipient=event.email,
        subject=VERIFY_SUBJECT,
        text=_VERIFY_TEXT.render(context),
        html=_VERIFY_HTML.render(context),
    )


def email_change_notice(
    event: EmailVerificationRequested, sender: MailSender, notice_id: uuid.UUID
) -> OutgoingEmail:
    """ "Your email is being changed", to the old address (never with the link)."""
    if event.previous_email is None:  # pragma: no cover - the caller sends it for changes only
        raise ValueError("not an email change")
    context = {"full_name": event.full_name, "username": event.username, "new_email": event.email}
    return compose(
        event_id=notice_id,
        kind="email_change_notice",
        sender=sender,
        recipient_name=event.full_name,
        recipient=event.previous_email,
        subject=NOTICE_SUBJECT,
        text=_NOTICE_TEXT.render(context),
        html=_NOTICE_HTML.render(context),
    )


def locked_out_email(
    event: AccountLockedOut, sender: MailSender, account_url: str
) -> OutgoingEmail:
    """The lockout notice, with a reset link (a reset ends the lock). The token appears in the
    link and nowhere else in the message."""
    context = {
        "full_name": event.full_name,
        "username": event.username,
        "until": event.locked_until.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
        "link": reset_link(account_url, event.token),
        "minutes": 30,
    }
    return compose(
        event_id=event.event_id,
        kind="locked_out",
        sender=sender,
        recipient_name=event.full_name,
        recipient=event.email,
        subject=LOCKED_SUBJECT,
        text=_LOCKED_TEXT.render(context),
        html=_LOCKED_HTML.render(context),
    )
