"""One set of rules for every channel: a whole set of answers becomes a case, or the list
of what is missing and what is wrong.

The SMS conversation calls `submit` on confirmation, the email channel with a form's
fields, the operator API for a walk-in citizen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.base import City, ServiceSpec
from models.cases import Case, create_case
from models.contacts import Contact
from parsers import tracking
from parsers.fields import FieldProblem, check_form


@dataclass(frozen=True)
class Submitted:
    case: Case
    pin: str


@dataclass(frozen=True)
class Rejected:
    problems: list[FieldProblem]


async def submit(
    session: AsyncSession,
    *,
    city: City,
    service: ServiceSpec,
    answers: Mapping[str, str | None],
    contact: Contact,
    channel: str,
    actor: str,
    district: int | None = None,
) -> Submitted | Rejected:
    """Check every answer with the service's rules; create the case when all pass."""
    check = check_form(
        service.fields,
        answers,
        districts=city.district_numbers(service.code),
        region=city.default_region,
    )
    if not check.ok:
        return Rejected(check.problems)
    for spec in service.fields:
        value = check.values.get(spec.key)
        if spec.type == "district" and isinstance(value, int) and district is None:
            district = value
    if district is not None and district not in city.district_numbers(service.code):
        return Rejected([FieldProblem("district", "field_district")])
    case, pin = await create_case(
        session,
        service=service.code,
        contact=contact,
        channel=channel,
        fields=dict(check.values),
        district=district,
        actor=actor,
        make_code=tracking.generate,
    )
    return Submitted(case, pin)
