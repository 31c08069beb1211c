"""The one canonical form of an account name, shared by users, auth and the gateway."""

from __future__ import annotations

import pytest
from common.identity import canonical_name


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("ada", "ada"),
        ("ADA", "ada"),
        ("ＡＤＡ", "ada"),  # full-width
        ("Ａda", "ada"),
        ("ADA@Example.ORG", "ada@example.org"),
        ("Straße", "strasse"),  # case folding, not lower()
        ("ﬁnn", "finn"),  # compatibility ligature
    ],
)
def test_look_alike_spellings_are_one_name(spelling: str, canonical: str) -> None:
    assert canonical_name(spelling) == canonical


def test_canonical_form_is_stable() -> None:
    for value in ("ＡＤＡ", "Straße", "ǅ", "ΐ", "İstanbul"):
        once = canonical_name(value)
        assert canonical_name(once) == once
