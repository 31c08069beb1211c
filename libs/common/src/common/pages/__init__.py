"""The hosted pages' kit: templates, one stylesheet, strict headers and CSRF-checked forms.

Every page Gatehouse serves to a browser (the account links of users, the sign-in and consent
pages of auth) is built with it, so they look alike and share one security posture: no script
(but the one file of a page that offers passkeys, from the service's own origin),
`Content-Security-Policy` with `default-src 'none'`, `no-referrer`, no framing, `no-store`, and
forms whose posts carry a signed double-submit token (`common.pages.csrf` says why that kind).
"""

from common.pages.csrf import CsrfRefused, CsrfTokens, derive_key
from common.pages.kit import (
    CONTENT_SECURITY_POLICY,
    PAGE_HEADERS,
    SCRIPT_CONTENT_SECURITY_POLICY,
    PageAnswer,
    PageError,
    PageKit,
    PageScript,
)

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "PAGE_HEADERS",
    "SCRIPT_CONTENT_SECURITY_POLICY",
    "CsrfRefused",
    "CsrfTokens",
    "PageAnswer",
    "PageError",
    "PageKit",
    "PageScript",
    "derive_key",
]
