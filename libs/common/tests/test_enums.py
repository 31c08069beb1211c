"""IdentityEnum: members hash by identity in C and otherwise behave as any Enum's."""

from __future__ import annotations

from common.enums import IdentityEnum


class Colour(IdentityEnum):
    RED = "red"
    BLUE = "blue"


def test_members_hash_by_identity_in_c() -> None:
    assert vars(IdentityEnum)["__hash__"] is object.__hash__
    assert hash(Colour.RED) == object.__hash__(Colour.RED)


def test_members_work_as_set_and_dict_keys_and_by_value() -> None:
    assert Colour.RED in frozenset({Colour.RED})
    assert Colour.BLUE not in frozenset({Colour.RED})
    assert {Colour.RED: 1, Colour.BLUE: 2}[Colour("blue")] == 2
    assert Colour("red") is Colour.RED
    assert Colour["BLUE"] is Colour.BLUE
    assert list(Colour) == [Colour.RED, Colour.BLUE]
