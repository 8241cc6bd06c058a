"""The email loop: N mails in Dovecot until every one is answered through SMTP.

A throw-away Dovecot (tests/mailservers.Dovecot) and an aiosmtpd server in a process of
its own (bench.smtp_sink: the tests' in-process capture would share the gateway's
interpreter lock and put its own work into the figure); a `Runtime` built as
tests/gateway/test_email.py's fixture builds it, on a fresh database per run. N mails
from N different citizens (a third each: HELP, "NEW 6" asking for the fill-in form, and
a complete land-use form that files a case) are appended first, untimed. Then the clock
runs over one `gateway.email_poller.poll_once` (fetch, handle, move to Processed) and as
many `gateway.outbox.deliver_due` passes as it takes to send every queued reply.

emails/s is N over the whole time; the outbox rate is replies sent over the delivery
time alone (the replies of one `deliver_due` pass share one SMTP connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bench.common import CONFIG, BenchError, Part, summarize
from bench.server import database

DESK = "desk@city.example"
DOVECOT_BINARY = Path("/usr/sbin/dovecot")
LAND_USE = """Hello, please register a land-use inquiry.

Service: 6
Property postal code: 1435678911
Municipal district: 6
Registration plate: 123/45
Intended use: residential

Thanks
"""


def dovecot_missing() -> str | None:
    if not DOVECOT_BINARY.exists():
        return "dovecot-imapd is not installed (/usr/sbin/dovecot)"
    if os.geteuid() == 0:
        for user in ("dovecot", "dovenull"):
            try:
                pwd.getpwnam(user)
            except KeyError:
                return f"user {user} missing (dovecot-core not set up)"
    return None


def citizen_mail(i: int) -> bytes:
    message = EmailMessage()
    sender = f"citizen{i}@example.org"
    message["From"] = f"Citizen {i} <{sender}>"
    message["To"] = DESK
    message["Message-ID"] = make_msgid(domain="example.org")
    message["Date"] = "Sat, 28 Nov 2026 10:00:00 +0330"
    kind = i % 3
    if kind == 0:
        message["Subject"] = "HELP"
        message.set_content("HELP\n")
    elif kind == 1:
        message["Subject"] = "NEW 6"
        message.set_content("NEW 6\n")
    else:
        message["Subject"] = "Land use"
        message.set_content(LAND_USE)
    return message.as_bytes()


def _append_all(dovecot: Any, raws: list[bytes]) -> None:
    with dovecot.connect() as conn:
        for raw in raws:
            typ, data = conn.append('"INBOX"', None, None, raw)
            if typ != "OK":
                raise BenchError(f"IMAP APPEND failed: {typ} {data!r}")


async def _one_run(n: int, db_url: str, work: Path, dovecot: Any, smtp: Any) -> dict[str, Any]:
    from gateway.email_poller import poll_once
    from gateway.outbox import deliver_due
    from gateway.runtime import Runtime
    from gateway.settings import Settings
    from tests.support import mail_server_settings

    settings = Settings(
        database_url=db_url,
        config=CONFIG,
        mail_limit_messages=10**9,  # never reached, still counted (bench.server)
        **{**mail_server_settings(dovecot, smtp), "imap_timeout": 30},  # a 200-mail chunk
        data_dir=work / "data",
        secret_key=SecretStr("bench-secret-key-for-tokens"),
    )
    runtime = Runtime.create(settings)
    try:
        if runtime.is_sqlite:
            await runtime.migrate()
        smtp.clear()
        await asyncio.to_thread(_append_all, dovecot, [citizen_mail(i) for i in range(n)])
        started = time.perf_counter()
        polled = await poll_once(runtime)
        poll_done = time.perf_counter()
        sent = retried = dead = 0
        while True:
            delivery = await deliver_due(runtime, limit=50)
            sent, retried, dead = (
                sent + delivery.sent,
                retried + delivery.retried,
                dead + delivery.dead,
            )
            if delivery.sent + delivery.retried + delivery.dead == 0 or retried or dead:
                break
        finished = time.perf_counter()
    finally:
        await runtime.close()
    answered = {rcpt for _, rcpts, _ in smtp.envelopes() for rcpt in rcpts}
    total, delivering = finished - started, finished - poll_done
    return {
        "n": n,
        "seconds": round(total, 3),
        "poll_seconds": round(poll_done - started, 3),
        "deliver_seconds": round(delivering, 3),
        "emails_per_s": n / total,
        "outbox_per_s": sent / delivering if delivering > 0 else None,
        "handled": polled.handled,
        "failed": polled.failed,
        "sent": sent,
        "retried": retried,
        "dead": dead,
        "citizens_answered": len(answered),
    }


def run_mail(n: int, runs: int, backends: list[str], work: Path) -> Part:
    part = Part("email")
    missing = dovecot_missing()
    if missing:
        part.skipped = missing
        return part
    from bench.smtp_sink import SmtpSink
    from tests.mailservers import Dovecot

    started = time.monotonic()
    with Dovecot() as dovecot, SmtpSink() as smtp:
        for backend in backends:
            results = []
            for i in range(runs):
                run_dir = work / f"mail-{backend}-{i}"
                run_dir.mkdir(parents=True, exist_ok=True)
                context = (
                    database(backend, run_dir)
                    if backend == "postgres"
                    else contextlib.nullcontext(None)
                )
                with context as db:
                    url = db.url if db else f"sqlite+aiosqlite:///{run_dir / 'mail.db'}"
                    result = asyncio.run(_one_run(n, url, run_dir, dovecot, smtp))
                results.append(result)
                outbox = result["outbox_per_s"] or 0.0
                print(
                    f"  email {backend}: {n} in {result['seconds']:.2f} s"
                    f" ({result['emails_per_s']:.1f}/s), outbox {outbox:.1f}/s",
                    flush=True,
                )
                if (result["handled"], result["failed"], result["citizens_answered"]) != (n, 0, n):
                    part.problems.append(
                        f"email {backend}: {n} mails, handled {result['handled']}, failed "
                        f"{result['failed']}, citizens answered {result['citizens_answered']}"
                    )
            part.rows.append(
                {
                    "db": backend,
                    "n": n,
                    "emails_per_s": summarize([r["emails_per_s"] for r in results]),
                    "outbox_per_s": summarize([r["outbox_per_s"] or 0.0 for r in results]),
                    "poll_seconds": summarize([r["poll_seconds"] for r in results]),
                    "runs": results,
                }
            )
    part.seconds = time.monotonic() - started
    return part


def main() -> None:
    """One email run, for `bench.instructions --email`: `python -m bench.mail --emails N`."""
    import argparse
    import json
    import tempfile

    from bench.server import database
    from bench.smtp_sink import SmtpSink
    from tests.mailservers import Dovecot

    parser = argparse.ArgumentParser(description="one run of the email part")
    parser.add_argument("--emails", type=int, default=200)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--pin-iterations",
        type=int,
        default=None,
        help="PBKDF2 rounds for new cases' PINs (bench.instructions sets 1: the hash is "
        "a fixed cost in its own thread, and would be most of the count)",
    )
    args = parser.parse_args()
    if args.pin_iterations is not None:
        import models.cases

        models.cases.PIN_ITERATIONS = args.pin_iterations
    missing = dovecot_missing()
    if missing:
        raise SystemExit(missing)
    with tempfile.TemporaryDirectory() as work, Dovecot() as dovecot, SmtpSink() as smtp:
        with database(args.db, Path(work)) as db:
            result = asyncio.run(_one_run(args.emails, db.url, Path(work), dovecot, smtp))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
