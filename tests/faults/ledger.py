"""The accounting of a fault scenario: what was sent against what the database holds.

`sms_ledger` takes the load generator's plan and result lines and reads the gateway's
database afterwards. Per MessageSid it asks: was it sent, did it get a 200, is there
exactly one inbound row, was it handled once (its reply rows are exactly the messages of
the TwiML the 200 carried, no more), and for every citizen who filled in the SMS form to
its end: exactly one case, with the answers given, filed once. It returns the figures
and a list of every problem found, described well enough to debug from.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from models.db import make_engine
from parsers import tracking
from parsers.normalize import fold_digits
from tests.faults.loadgen import FORM_USES
from tests.support import reply_messages


@dataclass
class Figures:
    """One scenario's counts, printed at the end of the run."""

    scenario: str
    sent: int = 0
    accepted: int = 0
    stored: int = 0
    answered: int = 0
    duplicated: int = 0
    lost: int = 0
    notes: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        line = (
            f"faults: {self.scenario}: sent {self.sent}, accepted {self.accepted}, "
            f"stored {self.stored}, answered {self.answered}, "
            f"duplicated {self.duplicated}, lost {self.lost}"
        )
        if self.notes:
            line += "; " + ", ".join(f"{k} {v}" for k, v in self.notes.items())
        return line


def attempt_counts(results: list[dict[str, Any]]) -> Counter[str]:
    """Every attempt's outcome across all messages: "200", "500", "error:ConnectError"…"""
    return Counter(outcome for r in results for _at, outcome in r["attempts"])


async def _read(database_url: str, channel: str = "sms") -> dict[str, Any]:
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            inbound = (
                await conn.execute(
                    text(
                        "SELECT id, provider_id, handled_at, error, attempts FROM inbound_messages "
                        "WHERE channel = :channel"
                    ),
                    {"channel": channel},
                )
            ).all()
            replies = (
                await conn.execute(
                    text(
                        "SELECT inbound_id, body FROM outbound_messages "
                        "WHERE kind = 'reply' AND inbound_id IS NOT NULL ORDER BY id"
                    )
                )
            ).all()
            cases = (
                await conn.execute(
                    text(
                        "SELECT cases.id, cases.code, cases.fields, contacts.address FROM cases "
                        "JOIN contacts ON contacts.id = cases.contact_id"
                    )
                )
            ).all()
            created = (
                await conn.execute(
                    text(
                        "SELECT case_id, count(*) FROM case_events WHERE kind = 'created' "
                        "GROUP BY case_id"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    return {"inbound": inbound, "replies": replies, "cases": cases, "created": dict(created)}


def _fields(value: Any) -> dict[str, Any]:
    if isinstance(value, str):  # JSON as text (SQLite)
        return dict(json.loads(value))
    return dict(value or {})


async def sms_ledger(
    scenario: str, database_url: str, plan: dict[str, Any], results: list[dict[str, Any]]
) -> tuple[Figures, list[str]]:
    """The figures of an SMS scenario and every problem found in its database."""
    db = await _read(database_url)
    problems: list[str] = []
    rows = defaultdict(list)
    for row in db["inbound"]:
        rows[row.provider_id].append(row)
    replies = defaultdict(list)
    for inbound_id, body in db["replies"]:
        replies[inbound_id].append(body)
    by_sid = {r["sid"]: r for r in results}
    planned = [m["sid"] for c in plan["citizens"] for m in c["messages"]]
    figures = Figures(scenario, sent=len(by_sid))
    for sid in planned:
        result = by_sid.get(sid)
        if result is None:
            problems.append(f"{sid}: never sent (an earlier message of its citizen failed)")
            figures.lost += 1
            continue
        accepted = result["status"] == 200
        figures.accepted += accepted
        found = rows.get(sid, [])
        figures.stored += len(found) == 1
        if not accepted:
            problems.append(f"{sid} {result['text']!r}: no 200 after {result['attempts']}")
        if len(found) != 1:
            problems.append(f"{sid} {result['text']!r}: {len(found)} inbound rows")
        if not found:
            figures.lost += 1
            continue
        answered, duplicated = _check_replies(sid, result, found[0], replies, problems)
        figures.answered += answered
        figures.duplicated += duplicated
        figures.lost += not answered
    extra = set(rows) - set(planned)
    if extra:
        problems.append(f"{len(extra)} inbound rows of MessageSids never sent: {sorted(extra)[:3]}")
    forms_dup, forms_lost = _check_forms(plan, by_sid, db, problems)
    figures.duplicated += forms_dup
    figures.lost += forms_lost
    figures.notes = {
        "cases filed": sum(1 for c in db["cases"] if c.address in _form_senders(plan)),
        # delivered again after it was stored (a lost 200 retried, or a redelivery):
        # answered from the row, not handled again
        "redelivered": sum(1 for found in rows.values() for r in found if r.attempts > 1),
    }
    return figures, problems


def _check_replies(
    sid: str, result: dict[str, Any], row: Any, replies: dict[int, list[str]], problems: list[str]
) -> tuple[bool, bool]:
    """(answered, duplicated) of one accepted message: answered when its row is handled
    without error and its first reply rows are the messages of the TwiML it got;
    duplicated when there are more reply rows than that (handled twice) or a redelivery
    got another answer."""
    if result["status"] != 200:
        return False, False
    given = reply_messages(result["twiml"])
    stored = replies.get(row.id, [])
    echoes = [e for e in result.get("echoes", []) if e is not None and e != result["twiml"]]
    if None in result.get("echoes", []):
        problems.append(f"{sid} {result['text']!r}: a redelivery never got its 200")
    answered = row.handled_at is not None and row.error is None and stored[: len(given)] == given
    duplicated = len(stored) > len(given) or bool(echoes)
    if not answered:
        problems.append(
            f"{sid} {result['text']!r}: handled_at {row.handled_at}, error {row.error!r}, "
            f"replies stored {stored}, given {given}"
        )
    if duplicated:
        problems.append(
            f"{sid} {result['text']!r}: {len(stored)} replies stored, {len(given)} given; "
            f"{len(echoes)} redeliveries answered otherwise: {echoes[:1]}"
        )
    return answered, duplicated


def report(problems: list[str], shown: int = 12, width: int = 400) -> str:
    """The problems for an assertion message: how many, and the first few, cut short."""
    lines = [p if len(p) <= width else p[: width - 1] + "…" for p in problems[:shown]]
    more = f"\n… and {len(problems) - shown} more" if len(problems) > shown else ""
    return f"{len(problems)} problems:\n" + "\n".join(lines) + more


def _form_senders(plan: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    return {
        c["sender"]: c["messages"]
        for c in plan["citizens"]
        if c["messages"] and c["messages"][0]["text"] == "NEW 6"
    }


def _check_forms(
    plan: dict[str, Any], by_sid: dict[str, Any], db: dict[str, Any], problems: list[str]
) -> tuple[int, int]:
    """Each form filled in to its end filed exactly one case, with its answers, once.
    Returns (cases too many, cases missing)."""
    duplicated = lost = 0
    cases_of = defaultdict(list)
    for case in db["cases"]:
        cases_of[case.address].append(case)
    for sender, messages in _form_senders(plan).items():
        finished = all(by_sid.get(m["sid"], {}).get("status") == 200 for m in messages)
        cases = cases_of.get(sender, [])
        if not finished:
            continue  # counted above, message by message
        if len(cases) != 1:
            problems.append(f"form of {sender}: {len(cases)} cases filed")
            duplicated += max(0, len(cases) - 1)
            lost += not cases
            continue
        case = cases[0]
        fields = _fields(case.fields)
        plate, use = messages[3]["text"], FORM_USES[int(messages[4]["text"]) - 1]
        if fields.get("plate_number") != plate or fields.get("intended_use") != use:
            problems.append(f"form of {sender}: case {case.code} has {fields}, not {plate} {use}")
        if db["created"].get(case.id) != 1:
            problems.append(f"case {case.code}: {db['created'].get(case.id)} 'created' events")
        told = by_sid[messages[-1]["sid"]]["twiml"]
        codes = {
            c.replace(" ", "")
            for c in _grouped_codes(fold_digits(told))
            if tracking.is_valid(c.replace(" ", ""))
        }
        if codes != {case.code}:
            problems.append(
                f"form of {sender}: the YES reply names {codes}, the case is {case.code}"
            )
    return duplicated, lost


def _grouped_codes(reply: str) -> list[str]:
    return re.findall(r"\d{4} \d{4} \d{4}", reply)


async def mail_ledger(
    scenario: str,
    database_url: str,
    sent: dict[str, str],
    forms: set[str],
    replies_to: list[str],
    processed: int,
) -> tuple[Figures, list[str]]:
    """The figures of a mailbox scenario. `sent` maps each appended mail's Message-ID to
    its sender, `forms` are the senders whose mail files a case, `replies_to` is the
    In-Reply-To of every mail the SMTP server received, `processed` the number of mails
    in the Processed folder. Each mail must have one inbound row, handled without error,
    one reply delivered; each form one case."""
    db = await _read(database_url, channel="email")
    problems: list[str] = []
    rows = defaultdict(list)
    for row in db["inbound"]:
        rows[row.provider_id.split("|")[0].strip("<>")].append(row)
    delivered = Counter(replies_to)
    figures = Figures(scenario, sent=len(sent), accepted=processed)
    for message_id, sender in sent.items():
        found = rows.get(message_id, [])
        figures.stored += len(found) == 1
        figures.duplicated += max(0, len(found) - 1) + max(0, delivered[message_id] - 1)
        ok = len(found) == 1 and found[0].handled_at is not None and found[0].error is None
        answered = ok and delivered[message_id] == 1
        figures.answered += answered
        figures.lost += not answered
        if not answered:
            state = [(r.handled_at, r.error) for r in found]
            problems.append(
                f"{message_id} of {sender}: rows {state}, replies {delivered[message_id]}"
            )
    extra = set(rows) - set(sent)
    if extra:
        problems.append(f"inbound rows of mails never sent: {sorted(extra)[:3]}")
    stray = set(delivered) - set(sent)
    if stray:
        problems.append(f"replies to mails never sent: {sorted(stray)[:3]}")
    cases = Counter(c.address for c in db["cases"])
    for sender in forms:
        if cases[sender] != 1:
            problems.append(f"form of {sender}: {cases[sender]} cases filed")
            figures.duplicated += max(0, cases[sender] - 1)
    if processed != len(sent):
        problems.append(f"{processed} mails in Processed, {len(sent)} sent")
    figures.notes = {"cases filed": sum(cases[s] for s in forms)}
    return figures, problems
