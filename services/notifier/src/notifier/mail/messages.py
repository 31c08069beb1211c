"""Emails built from Jinja2 templates (autoescaped HTML, plain text alternative)."""

from __future__ import annotations

import re
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import make_msgid

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from notifier.mail.schemas import UserRegistered

_templates = Environment(
    loader=PackageLoader("notifier.mail", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default=True),
    undefined=StrictUndefined,
    enable_async=False,
)
# Header values must stay on one line: control characters never reach a header.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def one_line(value: str) -> str:
    return _CONTROL.sub(" ", value).strip()


def welcome_email(event: UserRegistered, sender: str) -> EmailMessage:
    context = {"full_name": event.full_name, "username": event.username, "email": event.email}
    message = EmailMessage()
    message["Subject"] = "Welcome to Gatehouse"
    message["From"] = sender
    message["To"] = Address(display_name=one_line(event.full_name), addr_spec=event.email)
    message["Message-ID"] = make_msgid(domain="gatehouse.local")
    message["X-Gatehouse-Event-Id"] = str(event.event_id)
    message.set_content(_templates.get_template("welcome.txt.j2").render(context))
    html = _templates.get_template("welcome.html.j2").render(context)
    message.add_alternative(html, subtype="html")
    return message
