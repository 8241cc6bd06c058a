"""Cases and their history: tracking code, PIN, service, answers, status, events."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, bindparam, cast, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, joinedload, mapped_column, relationship
from sqlalchemy.orm.attributes import set_committed_value

from models.base import Base, ForEither, UTCDateTime, per_transaction, utcnow
from models.contacts import Contact

PIN_ITERATIONS = 20_000
FINAL_STATUSES = frozenset({"approved", "rejected", "closed"})


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(12), unique=True)
    pin_hash: Mapped[str] = mapped_column(String(128))
    service: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), default="received")
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    district: Mapped[int | None] = mapped_column(Integer, default=None)
    department: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    contact: Mapped[Contact] = relationship(lazy="joined")
    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", order_by="CaseEvent.id", lazy="selectin"
    )


class CaseEvent(Base):
    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # created, status, note, message
    status_from: Mapped[str | None] = mapped_column(String(32), default=None)
    status_to: Mapped[str | None] = mapped_column(String(32), default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    public: Mapped[bool] = mapped_column(Boolean, default=True)
    actor: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    case: Mapped[Case] = relationship(back_populates="events")


def hash_pin(pin: str) -> str:
    """A salted PBKDF2 hash of a PIN: ``pbkdf2_sha256$iterations$salt$hash``."""
    salt = secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt.encode(), PIN_ITERATIONS)
    return f"pbkdf2_sha256${PIN_ITERATIONS}${salt}${digest.hex()}"


def check_pin(pin: str, stored: str) -> bool:
    """Whether `pin` matches the stored hash, compared in constant time."""
    try:
        _algo, iterations, salt, expected = stored.split("$")
        digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt.encode(), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest.hex(), expected)


# PINs already verified, remembered so a citizen checking again is not charged the slow
# hash twice: keyed by an HMAC under a per-process random key (a dump of this memory
# gives no oracle for guessing PINs), bounded, oldest forgotten first. Wrong PINs are
# never remembered: every guess costs the full hash.
_VERIFIED: OrderedDict[bytes, None] = OrderedDict()
_VERIFIED_KEY = secrets.token_bytes(32)
VERIFIED_PINS_KEPT = 4096


async def verify_pin(pin: str, stored: str) -> bool:
    """`check_pin` off the event loop (PBKDF2 is deliberately slow), remembering success."""
    key = hmac.digest(_VERIFIED_KEY, f"{stored}\x00{pin}".encode(), "sha256")
    if key in _VERIFIED:
        _VERIFIED.move_to_end(key)
        return True
    if not await asyncio.to_thread(check_pin, pin, stored):
        return False
    _VERIFIED[key] = None
    while len(_VERIFIED) > VERIFIED_PINS_KEPT:
        _VERIFIED.popitem(last=False)
    return True


def new_pin() -> str:
    return f"{secrets.randbelow(10_000):04d}"


class PinStock:
    """New PINs with their hashes made ahead, in one worker thread: PBKDF2 releases the
    GIL, so while a core is free a case is filed without waiting 4–10 ms for its hash.
    Each PIN is handed out once; an empty stock hashes on the spot. Kept in this process
    only (emptied in a forked child, which must never hand out its parent's PINs)."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._ready: deque[tuple[str, str]] = deque()
        self._lock = threading.Lock()
        self._filling = False
        self._pool: ThreadPoolExecutor | None = None

    def take(self) -> tuple[str, str]:
        """(PIN, its hash), both new."""
        try:
            made = self._ready.popleft()
        except IndexError:
            pin = new_pin()
            made = (pin, hash_pin(pin))
        self._refill()
        return made

    def _refill(self) -> None:
        with self._lock:
            if self._filling or len(self._ready) > self.size // 2:
                return
            self._filling = True
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="citygate-pins")
            pool = self._pool
        pool.submit(self._fill)

    def _fill(self) -> None:
        try:
            while len(self._ready) < self.size:
                pin = new_pin()
                self._ready.append((pin, hash_pin(pin)))
        finally:
            with self._lock:
                self._filling = False

    def forget(self) -> None:
        """Empty, with no worker: for a forked child (its parent's PINs are not its own)."""
        self._ready = deque()
        self._lock = threading.Lock()
        self._filling = False
        self._pool = None


PINS = PinStock()
os.register_at_fork(after_in_child=PINS.forget)


# Built once: a statement made per call costs more than running it (its cache key).
_FIND = select(Case).where(Case.code == bindparam("code"))
_FIND_OF = _FIND.where(Case.contact_id == bindparam("contact_id"))
_FIND_MANY = ForEither(  # the events joined in: one statement instead of two
    lambda code_listed: select(Case).where(code_listed).options(joinedload(Case.events)),
    Case.code,
    "codes",
)
_READ = per_transaction("citygate.cases_read")  # session.info: code -> Case | None


async def read_cases(session: AsyncSession, *, codes: Sequence[str]) -> None:
    """Read the cases of many codes in one statement; `find_case` answers these codes
    from what was read for the rest of the transaction (the rows are the session's own
    objects, so a change made through them is seen; a case is never renamed)."""
    wanted = sorted(set(codes))
    if not wanted:
        return
    read: dict[str, Case | None] = session.info.setdefault(_READ, {})
    read.update((c, None) for c in wanted)
    found = await session.execute(_FIND_MANY.on(session), {"codes": wanted})
    for case in found.unique().scalars():
        read[case.code] = case


async def find_case(
    session: AsyncSession, *, code: str, contact_id: int | None = None
) -> Case | None:
    """The case with `code` (and, when given, of that contact only)."""
    read = session.info.get(_READ)
    if read is not None and code in read:
        case = read[code]
        return case if case is None or contact_id in (None, case.contact_id) else None
    if contact_id is None:
        result = await session.execute(_FIND, {"code": code})
    else:
        result = await session.execute(_FIND_OF, {"code": code, "contact_id": contact_id})
    return result.unique().scalar_one_or_none()


async def create_case(
    session: AsyncSession,
    *,
    service: str,
    contact: Contact,
    channel: str,
    fields: dict[str, Any],
    district: int | None,
    actor: str,
    make_code: Callable[[], str],
    attempts: int = 8,
) -> tuple[Case, str]:
    """A new case in status `received` with its first event; returns it and its PIN.

    A tracking-code collision (unique constraint) is retried with a fresh code.
    """
    pin, pin_hash = PINS.take()
    for _ in range(attempts):
        try:
            async with session.begin_nested():
                case = Case(
                    code=make_code(),
                    pin_hash=pin_hash,
                    service=service,
                    status="received",
                    fields=fields,
                    contact_id=contact.id,
                    channel=channel,
                    district=district,
                )
                session.add(case)
                await session.flush()
                event = CaseEvent(
                    case_id=case.id,
                    kind="created",
                    status_to="received",
                    note=f"channel: {channel}",
                    actor=actor,
                )
                session.add(event)
                await session.flush()
            # A new case's history and contact are known: set as loaded, not read back.
            set_committed_value(case, "events", [event])
            set_committed_value(event, "case", case)
            set_committed_value(case, "contact", contact)
            read = session.info.get(_READ)
            if read is not None and case.code in read:
                read[case.code] = case
            return case, pin
        except IntegrityError:
            continue
    raise RuntimeError("could not find a free tracking code")


async def change_status(
    session: AsyncSession,
    *,
    case: Case,
    status: str,
    note: str | None,
    actor: str,
    public: bool = True,
) -> CaseEvent:
    """Move a case to `status`, recording who did it and the note."""
    event = CaseEvent(
        case_id=case.id,
        kind="status",
        status_from=case.status,
        status_to=status,
        note=note,
        public=public,
        actor=actor,
    )
    case.status = status
    case.updated_at = utcnow()
    session.add(event)
    await session.flush()
    await session.refresh(case, ["events"])
    return event


async def search_cases(
    session: AsyncSession,
    *,
    status: str | None = None,
    service: str | None = None,
    district: int | None = None,
    channel: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    text: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Case]:
    """Cases matching every filter given, newest first. `text` is looked for in the code,
    the contact's address, the answers and the notes."""
    stmt = select(Case).join(Contact, Contact.id == Case.contact_id)
    if status:
        stmt = stmt.where(Case.status == status)
    if service:
        stmt = stmt.where(Case.service == service)
    if district is not None:
        stmt = stmt.where(Case.district == district)
    if channel:
        stmt = stmt.where(Case.channel == channel)
    if since is not None:
        stmt = stmt.where(Case.created_at >= since)
    if until is not None:
        stmt = stmt.where(Case.created_at < until)
    if text:
        pattern = f"%{text}%"
        noted = select(CaseEvent.case_id).where(CaseEvent.note.ilike(pattern))
        stmt = stmt.where(
            Case.code.ilike(pattern)
            | Contact.address.ilike(pattern)
            | cast(Case.fields, Text).ilike(pattern)
            | Case.id.in_(noted)
        )
    stmt = stmt.order_by(Case.created_at.desc(), Case.id.desc()).limit(limit).offset(offset)
    return list((await session.execute(stmt)).unique().scalars().all())


async def open_cases_of(session: AsyncSession, *, contact_id: int) -> list[Case]:
    """The contact's cases not yet in a final status, newest first."""
    stmt = (
        select(Case)
        .where(Case.contact_id == contact_id, Case.status.not_in(FINAL_STATUSES))
        .order_by(Case.created_at.desc(), Case.id.desc())
    )
    return list((await session.execute(stmt)).unique().scalars().all())


def last_public_note(case: Case) -> str | None:
    for event in reversed(case.events):
        if event.public and event.note and event.kind in ("status", "note"):
            return event.note
    return None


async def all_cases(session: AsyncSession) -> list[Case]:
    """Every case with its history (for the report)."""
    return list((await session.execute(select(Case))).unique().scalars().all())
