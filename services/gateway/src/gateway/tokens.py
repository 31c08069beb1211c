"""Token checks at the edge: the common verifier, with verified tokens remembered until expiry."""

from __future__ import annotations

import time

from common.tokens import AccessClaims, InvalidToken, TokenVerifier


class CachingVerifier:
    """Remembers up to `size` verified tokens (oldest forgotten first) until they expire, so a
    client repeating its token costs a dictionary lookup instead of an RSA verification.
    Revocation is still checked on every request (Redis), never cached."""

    def __init__(self, verifier: TokenVerifier, size: int) -> None:
        self.verifier = verifier
        self.size = size
        self.cache: dict[str, AccessClaims] = {}

    async def verify(self, token: str) -> AccessClaims:
        claims = self.cache.get(token)
        now = time.time()
        if claims is not None:
            if claims.expires_at + self.verifier.leeway > now:
                return claims
            del self.cache[token]
            raise InvalidToken("expired")
        claims = await self.verifier.verify(token)
        if self.size:
            if len(self.cache) >= self.size:
                del self.cache[next(iter(self.cache))]
            self.cache[token] = claims
        return claims
