"""Operator work on a case, shared by the API, the admin pages and the command line.

Every status change and every public note is announced to the citizen through the
outbox; an internal note is recorded and never sent; an assignment is internal.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.notify import queue_notification
from gateway.runtime import Runtime
from models.audit import record
from models.base import utcnow
from models.cases import Case, CaseEvent, change_status
from models.messages import OutboundMessage


class CaseWorkError(ValueError):
    """A change an operator asked for that cannot be made; the message says why."""


@dataclass(frozen=True)
class Change:
    status: str | None = None
    note: str | None = None
    public: bool = True
    district: int | None = None
    department: str | None = None


async def apply_change(
    session: AsyncSession, runtime: Runtime, case: Case, change: Change, *, actor: str
) -> OutboundMessage | None:
    """Apply `change`; returns the queued notification, if the citizen is told."""
    config = runtime.config
    if change.status is not None and change.status not in config.statuses:
        allowed = ", ".join(config.statuses)
        raise CaseWorkError(f"unknown status '{change.status}'; one of: {allowed}")
    if change.district is not None and config.district(change.district) is None:
        raise CaseWorkError(f"unknown district {change.district}")
    note = (change.note or "").strip() or None
    if change.district is not None or change.department is not None:
        parts = []
        if change.district is not None and change.district != case.district:
            parts.append(f"district {case.district} → {change.district}")
            case.district = change.district
        if change.department is not None and change.department != case.department:
            parts.append(f"department {case.department} → {change.department}")
            case.department = change.department
        if parts:
            session.add(
                CaseEvent(
                    case_id=case.id, kind="assign", note="; ".join(parts), public=False, actor=actor
                )
            )
            case.updated_at = utcnow()
    status_changed = change.status is not None and change.status != case.status
    if status_changed:
        assert change.status is not None
        await change_status(
            session, case=case, status=change.status, note=note, actor=actor, public=change.public
        )
    elif note:
        session.add(
            CaseEvent(case_id=case.id, kind="note", note=note, public=change.public, actor=actor)
        )
        case.updated_at = utcnow()
    await session.flush()
    await session.refresh(case, ["events"])
    record(
        session,
        actor=actor,
        action="case.change",
        subject=case.code,
        status=change.status,
        public=change.public,
        note=bool(note),
        district=change.district,
        department=change.department,
    )
    if not status_changed and not (note and change.public):
        return None
    return await queue_notification(
        session,
        runtime,
        case,
        status_changed=status_changed,
        note=note if change.public else None,
    )
