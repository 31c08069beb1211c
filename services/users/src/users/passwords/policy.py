"""Password policy (ASVS 5.0 V6): 8–128 characters, no composition rules, not a common password."""

from __future__ import annotations

import unicodedata
from functools import cache
from importlib.resources import files

MIN_LENGTH = 8
MAX_LENGTH = 128


@cache
def common_passwords() -> frozenset[str]:
    """The bundled list (30,000 most common passwords, see the file's header), lowercase."""
    text = files("users.passwords").joinpath("common-passwords.txt").read_text("utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("# "))


def password_problem(password: str) -> str | None:
    """Why `password` is refused, or None. Length counts characters (code points, after NFC)."""
    length = len(unicodedata.normalize("NFC", password))
    if length < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if length > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    if "\x00" in password:
        return "must not contain NUL characters"
    if password.lower() in common_passwords():
        return "is too common; choose a less guessable password"
    return None
