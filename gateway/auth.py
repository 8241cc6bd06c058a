"""Operator authentication: a bearer token compared in constant time."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.runtime import Runtime

_bearer = HTTPBearer(auto_error=False, description="CITYGATE_ADMIN_TOKEN")


def operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The operator's name for the audit trail; 401 without the right token."""
    runtime: Runtime = request.app.state.runtime
    expected = runtime.settings.admin_token
    if expected is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "operator API disabled: CITYGATE_ADMIN_TOKEN is not set",
        )
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a valid bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return "operator"


Operator = Annotated[str, Depends(operator)]
