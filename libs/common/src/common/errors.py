"""One error type and one renderer: every error leaves as RFC 9457 problem+json.

Services raise `AppError` subclasses; the handlers installed by `install_error_handlers` turn them,
request-validation failures and anything unexpected into `application/problem+json`. Unexpected
errors are logged with their traceback and answered with a bare 500 that reveals nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

PROBLEM_JSON = "application/problem+json"
logger = logging.getLogger("gatehouse.errors")


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def problem_document(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    type_: str = "about:blank",
    instance: str | None = None,
    errors: Sequence[Mapping[str, str]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The RFC 9457 members, for renderers outside FastAPI (the gateway's plain ASGI path)."""
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = list(errors)
    if extra:
        body.update(extra)
    return body


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    type_: str = "about:blank",
    instance: str | None = None,
    errors: Sequence[Mapping[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> ProblemResponse:
    body = problem_document(
        status, title, detail, type_=type_, instance=instance, errors=errors, extra=extra
    )
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


class AppError(Exception):
    """An error that the client caused or must know about; rendered as problem+json."""

    status: int = 500
    title: str = "Internal Server Error"
    type_: str = "about:blank"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        errors: Sequence[Mapping[str, str]] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = dict(headers or {})
        self.errors = errors

    def to_response(self, instance: str | None = None) -> ProblemResponse:
        return problem(
            self.status,
            self.title,
            self.detail,
            type_=self.type_,
            instance=instance,
            errors=self.errors,
            headers=self.headers,
        )


class BadRequest(AppError):
    status, title = 400, "Bad Request"


class Unauthorized(AppError):
    """401 with `WWW-Authenticate: Bearer`; `invalid_token` when a token was presented."""

    status, title = 401, "Unauthorized"

    def __init__(self, detail: str | None = None, *, token_presented: bool = False) -> None:
        challenge = 'Bearer error="invalid_token"' if token_presented else "Bearer"
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class InsufficientUserAuthentication(AppError):
    """401 RFC 9470 challenge: the token is good but its authentication is too old (`max_age`)
    or too weak (`acr_values`); the client sends the user through a login again."""

    status, title = 401, "Unauthorized"

    def __init__(
        self, detail: str, *, max_age: int | None = None, acr_values: str | None = None
    ) -> None:
        # Exactly API.md §9's challenge: clients match it literally; the why is in the body.
        challenge = 'Bearer error="insufficient_user_authentication"'
        if max_age is not None:
            challenge += f", max_age={max_age}"
        if acr_values is not None:
            challenge += f', acr_values="{acr_values}"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class Forbidden(AppError):
    status, title = 403, "Forbidden"


class NotFound(AppError):
    status, title = 404, "Not Found"


class Conflict(AppError):
    status, title = 409, "Conflict"


class PayloadTooLarge(AppError):
    status, title = 413, "Payload Too Large"


class ValidationFailed(AppError):
    """422 naming each offending field."""

    status, title = 422, "Unprocessable Content"

    def __init__(self, errors: Sequence[Mapping[str, str]], detail: str | None = None) -> None:
        super().__init__(detail or "The request has invalid fields.", errors=errors)


class TooManyRequests(AppError):
    status, title = 429, "Too Many Requests"


class ServiceUnavailable(AppError):
    status, title = 503, "Service Unavailable"


class GatewayTimeout(AppError):
    status, title = 504, "Gateway Timeout"


def _field_name(loc: Sequence[int | str]) -> str:
    # Drop the "body"/"query"/... prefix FastAPI adds; keep the path inside the input.
    parts = [str(p) for p in loc[1:]] if len(loc) > 1 else [str(p) for p in loc]
    return ".".join(parts) or "body"


def validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for err in exc.errors():
        loc = err.get("loc", ())
        message = str(err.get("msg", "invalid value"))
        if err.get("type") == "json_invalid":
            out.append({"field": "body", "message": "The body is not valid JSON."})
            continue
        if loc == ("body",) and err.get("type") == "missing":
            out.append({"field": "body", "message": "A request body is required."})
            continue
        out.append({"field": _field_name(loc), "message": message})
    return out


def install_error_handlers(app: FastAPI) -> None:
    async def on_app_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AppError)
        return exc.to_response(instance=request.url.path)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return ValidationFailed(validation_errors(exc)).to_response(instance=request.url.path)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        title = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, "Error")
        detail = exc.detail if isinstance(exc.detail, str) and exc.status_code < 500 else None
        return problem(
            exc.status_code,
            title,
            detail,
            instance=request.url.path,
            headers=exc.headers,
        )

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error", extra={"path": request.url.path})
        return problem(500, "Internal Server Error", instance=request.url.path)

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
