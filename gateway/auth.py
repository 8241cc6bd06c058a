"""Operator authentication: named bearer tokens, each compared in constant time.

Tokens come from the environment or a secrets file, never from config.yaml; the name
of the operator whose token matched is recorded with every change they make.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.runtime import Runtime

_bearer = HTTPBearer(auto_error=False, description="an operator token")


def operator_for(runtime: Runtime, given: str) -> str | None:
    """The name of the operator whose token is `given`; every token is compared."""
    match = None
    for name, token in runtime.operators.items():
        if hmac.compare_digest(given.encode(), token.encode()):
            match = name
    return match


async def operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The operator's name for the audit trail; 401 without the right token."""
    runtime: Runtime = request.app.state.runtime
    if not runtime.operators:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "operator API disabled: set CITYGATE_OPERATOR_TOKENS or CITYGATE_ADMIN_TOKEN",
        )
    name = operator_for(runtime, credentials.credentials if credentials else "")
    if name is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a valid bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return name


Operator = Annotated[str, Depends(operator)]
