from auth.clients.models import RegisteredClient, ServiceClient
from auth.keys.models import SigningKey
from auth.mfa.models import MfaTicket, RecoveryCode, TotpCredential
from auth.models import Base, OutboxEvent
from auth.oidc.models import AuthorizationCode, Consent, SsoSession
from auth.passkeys.models import Passkey, PasskeyChallenge
from auth.revocation.models import UserNotBefore
from auth.sessions.models import LoginSession, RefreshToken
from common.migrations import run_env

# every table registered before migrating
assert all(
    model.metadata is Base.metadata
    for model in (
        ServiceClient,
        RegisteredClient,
        SigningKey,
        LoginSession,
        RefreshToken,
        UserNotBefore,
        AuthorizationCode,
        SsoSession,
        Consent,
        TotpCredential,
        RecoveryCode,
        MfaTicket,
        OutboxEvent,
        Passkey,
        PasskeyChallenge,
    )
)
run_env(Base.metadata)
