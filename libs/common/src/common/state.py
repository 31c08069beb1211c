"""What a service app keeps for the life of its process: one typed object, `Runtime`.

`create_service_app` puts a `Runtime` on the app (its one `app.state` attribute). The lifespan
builds the service's clients into a frozen dataclass of its own (`UsersState`: the database, the
hasher, the clients to other services…) and hands it over with `keep_state`, together with what
common code reads: the database `DbDep` opens sessions on, the token verifiers of
`common.security`, and `/ready`'s checks. Routes reach the service's object through one dependency
alias, `UsersStateDep = Annotated[UsersState, Depends(state_dependency(UsersState))]`.

Why not Starlette's lifespan state (`yield {...}`, read as `request.state`): its attributes are
untyped, it is copied into every request's scope, and it is reachable only from inside a request,
while the signal handler (`draining`), the gateway's front end (built before FastAPI's stack) and
the tests (which swap a piece of a running app) reach the app itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from starlette.requests import Request

from common.tokens import TokenVerifier

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from common.db import Database
    from common.health import ReadinessCheck
    from common.settings import ServiceSettings
    from common.tokens import JwksCache

S = TypeVar("S")


class NotBuilt(RuntimeError):
    """A piece the lifespan builds was asked for before it ran (or one it never builds)."""


@dataclass(slots=True)
class Runtime:
    """What common code reads of one service app; `keep_state` fills it in the lifespan."""

    settings: ServiceSettings
    # The service's own object (`UsersState`), once its lifespan built it.
    service: object | None = None
    database: Database | None = None
    # Users' tokens (audience = the platform) and service tokens for this service's `/internal`.
    token_verifier: TokenVerifier | None = None
    internal_token_verifier: TokenVerifier | None = None
    readiness_checks: Mapping[str, ReadinessCheck] = field(default_factory=dict)
    # Dependencies the service serves without: reported by `/ready`, never a 503 (common.health).
    degradable_checks: Mapping[str, ReadinessCheck] = field(default_factory=dict)
    # Set by the SIGTERM handler (common.serve): `/ready` answers 503 from then on.
    draining: bool = False


def install_runtime(app: Starlette, settings: ServiceSettings) -> Runtime:
    runtime = Runtime(settings)
    app.state.runtime = runtime
    return runtime


def runtime_of(app: Starlette) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


def keep_state(
    app: Starlette,
    service: object,
    *,
    database: Database | None = None,
    token_verifier: TokenVerifier | None = None,
    internal_token_verifier: TokenVerifier | None = None,
    readiness_checks: Mapping[str, ReadinessCheck] | None = None,
    degradable_checks: Mapping[str, ReadinessCheck] | None = None,
) -> None:
    """Called by the lifespan once it has built `service` (and again by a test that replaces a
    piece of it: the pieces common code reads are kept unless given)."""
    runtime = runtime_of(app)
    runtime.service = service
    if database is not None:
        runtime.database = database
    if token_verifier is not None:
        runtime.token_verifier = token_verifier
    if internal_token_verifier is not None:
        runtime.internal_token_verifier = internal_token_verifier
    if readiness_checks is not None:
        runtime.readiness_checks = readiness_checks
    if degradable_checks is not None:
        runtime.degradable_checks = degradable_checks


def keep_service_state(
    app: Starlette,
    service: object,
    *,
    database: Database,
    jwks: JwksCache,
    name: str,
    cache_size: int,
    degradable_checks: Mapping[str, ReadinessCheck],
) -> None:
    """`keep_state` for a service that users and other services both call (auth, users): ready
    while its database answers; users' tokens (the API audience) and service tokens (`name` as
    audience) verified against the same keys, each verifier remembering `cache_size` tokens."""
    settings = runtime_of(app).settings
    keep_state(
        app,
        service,
        database=database,
        token_verifier=TokenVerifier.for_audience(
            jwks, settings, settings.audience, cache_size=cache_size
        ),
        internal_token_verifier=TokenVerifier.for_audience(
            jwks, settings, name, cache_size=cache_size
        ),
        readiness_checks={"database": database.ping},
        degradable_checks=degradable_checks,
    )


def drop_state(app: Starlette) -> None:
    """At the lifespan's end, once nothing is to use the clients it is closing."""
    runtime_of(app).service = None


def service_state(app: Starlette, kind: type[S]) -> S:
    """The service's object of type `kind`, as the lifespan kept it."""
    service = runtime_of(app).service
    if not isinstance(service, kind):
        raise NotBuilt(f"{kind.__name__} is built by the lifespan, which has not run")
    return service


def state_dependency(kind: type[S]) -> Callable[[Request], S]:
    """The dependency that hands a route the service's object of type `kind`."""

    def dependency(request: Request) -> S:
        return service_state(request.app, kind)

    dependency.__name__ = f"get_{kind.__name__}"
    return dependency


def required(piece: S | None, name: str) -> S:
    """`piece`, which a dependency of common code needs, or `NotBuilt` naming it."""
    if piece is None:
        raise NotBuilt(f"the lifespan did not keep a {name} (common.state.keep_state)")
    return piece
