"""Canonical account names: emails and usernames compared after NFKC and case folding, so `ADA`,
`ada` and the full-width `ａｄａ` are one name.

Users stores and matches accounts by this form, auth checks credentials with it, and the gateway
keys its login limits on it: all three must call this one function, or a spelling that one of them
treats as another name gives an attacker a fresh limit for the same account.
"""

from __future__ import annotations

import unicodedata


def canonical_name(value: str) -> str:
    """NFKC, case fold, NFKC again (case folding can leave a string that is not NFKC)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())
