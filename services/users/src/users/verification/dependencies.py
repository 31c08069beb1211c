"""What the verification routes (JSON and pages) take from the app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from users.verification.service import VerificationLinks


def get_links(request: Request) -> VerificationLinks:
    links: VerificationLinks = request.app.state.verification_links
    return links


Links = Annotated[VerificationLinks, Depends(get_links)]
