"""One error type and one renderer: every error leaves as RFC 9457 problem+json.

Services raise `AppError` subclasses; the handlers installed by `install_error_handlers` turn them,
request-validation failures and anything unexpected into `application/problem+json`. Unexpected
errors are logged with their traceback and answered with a bare 500 that reveals nothing; a
database that cannot be reached is a 503 instead (`common.db.install_outage_handlers`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import SkipJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

PROBLEM_JSON = "application/problem+json"
logger = logging.getLogger("gatehouse.errors")


def _absent(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class FieldProblem(BaseModel):
    """One offending input field of a 422."""

    field: str = Field(description="Dotted path of the field inside its input, or `body`.")
    message: str


class ProblemDetails(BaseModel):
    """RFC 9457 problem details: the body of every error answer (API.md §3). Problems of a
    particular `type` may carry extension members of their own."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type_: str = Field(default="about:blank", alias="type")
    title: str
    status: int = Field(ge=400, le=599)
    # Left out when there is none (never null): no `default: null` in the schema either.
    detail: str | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_absent)
    instance: str | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_absent)
    errors: list[FieldProblem] | SkipJsonSchema[None] = Field(
        default=None, description="On a 422: each offending field.", json_schema_extra=_absent
    )


PROBLEM_SCHEMA_REF = "#/components/schemas/ProblemDetails"
PROBLEM_DESCRIPTIONS: dict[int, str] = {
    401: 'No or bad credentials (`WWW-Authenticate: Bearer`, with `error="invalid_token"` '
    "when a token was presented)",
    403: "Authenticated, but not allowed",
    404: "No such resource (or not one the caller may see)",
    409: "Conflicts with the current state (e.g. a taken email or username)",
    413: "The body is too large",
    422: "Malformed or invalid input: `errors` names each offending field",
    429: "Rate limited: retry after `Retry-After` seconds",
    503: "A service this needs is unavailable; retry after `Retry-After` seconds",
    504: "An upstream service did not answer in time",
}


def problem_schemas() -> dict[str, Any]:
    """`ProblemDetails` and what it refers to, as OpenAPI component schemas."""
    schema = ProblemDetails.model_json_schema(
        ref_template="#/components/schemas/{model}", mode="serialization"
    )
    nested: dict[str, Any] = schema.pop("$defs", {})
    return {"ProblemDetails": schema, **nested}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses: problem+json bodies (`ProblemDetails`, which
    `create_service_app` adds to the document's components)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        answer: dict[str, Any] = {
            "description": PROBLEM_DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
            "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
        }
        if status == 401:  # `Unauthorized` always sets it
            answer["headers"] = {
                "WWW-Authenticate": {"required": True, "schema": {"type": "string"}}
            }
        responses[status] = answer
    return responses


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
        # Extension members of a problem `type` of its own (RFC 9457 §3.2).
        self.extra: dict[str, Any] = {}

    def to_response(self, instance: str | None = None) -> ProblemResponse:
        return problem(
            self.status,
            self.title,
            self.detail,
            type_=self.type_,
            instance=instance,
            errors=self.errors,
            headers=self.headers,
            extra=self.extra,
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


# Problems a client acts on by kind carry a `type` of their own (RFC 9457 §3.1.1), under this.
PROBLEM_TYPES = "https://gatehouse.dev/problems/"


class EmailNotVerified(Forbidden):
    """A password login of an account whose address is not verified, when
    `REQUIRE_VERIFIED_EMAIL` is on (API.md §8). Only ever after the right password."""

    title = "Email Not Verified"
    type_ = PROBLEM_TYPES + "email-not-verified"


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

    @classmethod
    def of(cls, exc: ValidationError) -> ValidationFailed:
        """The errors of a model a route validates itself (FastAPI's own are
        `validation_errors`): each field by its path in the body, never its value."""
        return cls(
            [
                {
                    "field": ".".join(str(part) for part in error["loc"]) or "body",
                    "message": error["msg"],
                }
                for error in exc.errors()
            ]
        )


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


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path. (Starlette's own 405 names only the methods
    of the first route that matches the path, though several may, one per method.)"""
    methods: set[str] = set()
    # Through included routers too (FastAPI keeps them nested).
    for route in iter_route_contexts(request.app.router.routes):
        match, _ = route.matches(request.scope)
        route_methods = getattr(route, "methods", None)
        if match is not Match.NONE and route_methods:
            methods |= set(route_methods)
    return sorted(methods | {"OPTIONS"}) if methods else []


def _method_not_allowed(request: Request) -> Response:
    allow = {"Allow": ", ".join(allowed_methods(request))}
    if request.method == "OPTIONS":  # RFC 9110 §9.3.7: what this resource supports
        return Response(status_code=204, headers=allow)
    detail = f"{request.method} is not supported here."
    return problem(405, "Method Not Allowed", detail, instance=request.url.path, headers=allow)


def install_error_handlers(app: FastAPI) -> None:
    async def on_app_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AppError)
        return exc.to_response(instance=request.url.path)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return ValidationFailed(validation_errors(exc)).to_response(instance=request.url.path)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:
            # The framework's own "cannot parse the body" (a JSON body that is not UTF-8, a
            # broken form): malformed input, so a 422 naming the body (API.md §3).
            errors = [{"field": "body", "message": "The body cannot be parsed."}]
            return ValidationFailed(errors).to_response(instance=request.url.path)
        if exc.status_code == 405:
            return _method_not_allowed(request)
        title = {404: "Not Found"}.get(exc.status_code, "Error")
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
