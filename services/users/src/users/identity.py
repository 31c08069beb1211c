"""Canonical identities: emails and usernames compared after NFKC and case folding, so `ADA`,
`ada` and the full-width `ａｄａ` are one name."""

from __future__ import annotations

import unicodedata


def canonical(value: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())
