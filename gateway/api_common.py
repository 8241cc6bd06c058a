"""What the operator API's routers share: the error body and the statuses every route
may answer, and the bounds of what a request may carry so that the database can hold it
(a value past them is a 422, never a database error and a 500).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

# The range of PostgreSQL's INTEGER, the type of every id and number column.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
# The largest OFFSET PostgreSQL takes (a BIGINT).
INT64_MAX = 2**63 - 1
# Text without NUL: PostgreSQL stores and compares no text holding one.
NO_NUL = r"^[^\x00]*$"


class Problem(BaseModel):
    """An error's body: a message, or what was wrong (a request's invalid fields, the
    reasons a keyword was refused)."""

    detail: str | list[Any] | dict[str, Any]


_MEANING = {
    400: "the body could not be read",
    401: "no valid operator token",
    404: "no such item",
    409: "refused: the reasons are in the detail",
    422: "the request is invalid: what is wrong is in the detail",
    503: "the operator API is disabled: no operator tokens are set",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of these error statuses, each with a `Problem` body."""
    return {code: {"model": Problem, "description": _MEANING[code]} for code in codes}


# Every operator route may answer these.
OPERATOR_RESPONSES = problems(401, 503)
# A route that reads a JSON body may also answer 400 (FastAPI, for a body it cannot read)
# and 422 (FastAPI's field errors, or the route's own `{"detail": ...}`).
BODY_RESPONSES = problems(400, 422)
