"""The one strict form reader the gateway and auth share: one reading of a body, or a refusal."""

from __future__ import annotations

import pytest
from common.forms import FormRefused, parse_form, parse_json_object

FORM = "application/x-www-form-urlencoded"


def test_a_plain_login_form_is_read() -> None:
    body = b"grant_type=password&username=ada%40example.org&password=a+b%26c%3D&scope="
    assert parse_form(body, FORM) == {
        "grant_type": "password",
        "username": "ada@example.org",
        "password": "a b&c=",
        "scope": "",
    }
    assert parse_form(b"username=%C3%A9", "Application/X-WWW-Form-Urlencoded; charset=UTF-8") == {
        "username": "é"
    }
    assert parse_form(b"", FORM) == {}


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "multipart/form-data; boundary=x",
        "application/json",
        "application/x-www-form-urlencoded; charset=latin-1",
        "application/x-www-form-urlencoded; boundary=x",
        "application/x-www-form-urlencoded-extra",
    ],
)
def test_other_content_types_are_415(content_type: str | None) -> None:
    with pytest.raises(FormRefused) as refused:
        parse_form(b"username=ada&password=x", content_type)
    assert refused.value.status == 415


@pytest.mark.parametrize(
    "body",
    [
        b"username=decoy&username=victim&password=x",  # the first against the last
        b"username=ada&password=x&foo=1",  # not a login field
        b"username=ada&password=x&&",  # empty pairs
        b"username&password=x",  # no '='
        b"=x&password=x",
        b"username=%zz&password=x",  # broken escapes
        b"username=%4&password=x",
        b"username=%ff%fe&password=x",  # not UTF-8
        b"username=\xff&password=x",
        b"&".join(b"f%d=1" % i for i in range(50)),
    ],
)
def test_ambiguous_or_malformed_forms_are_422(body: bytes) -> None:
    with pytest.raises(FormRefused) as refused:
        parse_form(body, FORM)
    assert refused.value.status == 422
    assert refused.value.errors


def test_a_repeated_field_is_named() -> None:
    with pytest.raises(FormRefused) as refused:
        parse_form(b"username=a&username=b", FORM)
    assert refused.value.errors == ({"field": "username", "message": "The field is repeated."},)


def test_large_forms_are_413() -> None:
    with pytest.raises(FormRefused) as refused:
        parse_form(b"username=" + b"a" * 20_000, FORM)
    assert refused.value.status == 413


def test_any_names_when_no_field_set_is_given() -> None:
    body = b"grant_type=client_credentials&client_id=svc&audience=users"
    assert parse_form(body, FORM, fields=None, max_fields=16)["client_id"] == "svc"
    with pytest.raises(FormRefused):
        parse_form(b"client_id=a&client_id=b", FORM, fields=None, max_fields=16)


JSON = "application/json"


def test_a_json_object_is_read_with_each_key_once() -> None:
    body = b'{"mfa_token": "u.r", "code": "123456"}'
    assert parse_json_object(body, JSON) == {"mfa_token": "u.r", "code": "123456"}
    assert parse_json_object(body, b"application/json; charset=utf-8")["code"] == "123456"


@pytest.mark.parametrize(
    "body",
    [
        b'{"mfa_token": "a.b", "mfa_token": "c.d"}',  # Pydantic would take the last
        b'{"a": {"b": 1, "b": 2}}',
        b"[]",
        b'"text"',
        b"",
        b"{",
        b'{"a": "\xff"}',
        b'\xff\xfe{\x00"\x00a\x00"\x00:\x001\x00}\x00',  # UTF-16: json.loads would guess it
        b"[" * 100_000,
    ],
)
def test_json_read_more_than_one_way_is_422(body: bytes) -> None:
    with pytest.raises(FormRefused) as refused:
        parse_json_object(body, JSON, max_bytes=1_000_000)
    assert refused.value.status == 422
    assert refused.value.errors


@pytest.mark.parametrize("media", [None, "text/plain", FORM, "application/json-patch+json"])
def test_json_of_another_media_type_is_415(media: str | None) -> None:
    with pytest.raises(FormRefused) as refused:
        parse_json_object(b"{}", media)
    assert refused.value.status == 415


def test_large_json_is_413() -> None:
    with pytest.raises(FormRefused) as refused:
        parse_json_object(b'{"a": "' + b"x" * 5000 + b'"}', JSON, max_bytes=4096)
    assert refused.value.status == 413
