"""The `citygate` command: serve, simulate, migrate, keywords, services, cases.

Every command reads `config.yaml` (path in CITYGATE_CONFIG) and the environment; a
wrong configuration is reported with file, key and reason, and exit status 2.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from gateway.runtime import Runtime
from gateway.settings import ConfigError, Settings, config_path_from_env, load_settings

T = TypeVar("T")
app = typer.Typer(help="citygate: SMS and email request gateway", no_args_is_help=True)
keywords_app = typer.Typer(help="The command keyword table", no_args_is_help=True)
cases_app = typer.Typer(help="Operator work on cases", no_args_is_help=True)
app.add_typer(keywords_app, name="keywords")
app.add_typer(cases_app, name="cases")
out = Console()
err = Console(stderr=True)
SIMULATED_PHONE = "+989120000000"


def _settings() -> Settings:
    return load_settings(config=config_path_from_env())


def _run(work: Callable[[Runtime], Awaitable[T]], *, migrate: bool = True) -> T:
    settings = _settings()
    runtime = Runtime.create(settings)

    async def main() -> T:
        try:
            if migrate and runtime.is_sqlite:
                await runtime.migrate()
            return await work(runtime)
        finally:
            await runtime.close()

    return asyncio.run(main())


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 1,
    poller: Annotated[bool, typer.Option(help="poll the mailbox (when IMAP is set)")] = True,
    outbox: Annotated[bool, typer.Option(help="send queued mail (when SMTP is set)")] = True,
) -> None:
    """Run the gateway: HTTP (Twilio webhook, operator API, health), the email poller and
    the outbox worker in one process; --no-poller / --no-outbox turn parts off."""
    import uvicorn

    logging.getLogger().setLevel(logging.INFO)

    import os

    from gateway.app import DEV_MODE_BANNER, check_startable

    if not poller:
        os.environ["CITYGATE_RUN_POLLER"] = "0"
    if not outbox:
        os.environ["CITYGATE_RUN_OUTBOX"] = "0"
    settings = _settings()
    check_startable(settings)
    runtime = Runtime.create(settings)

    async def prepare() -> None:
        try:
            if runtime.is_sqlite:
                await runtime.migrate()
        finally:
            await runtime.close()

    asyncio.run(prepare())
    if settings.twilio_auth_token is None:
        err.print(f"[bold red]{DEV_MODE_BANNER}[/bold red]")
    uvicorn.run(
        "gateway.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        log_level="info",
    )


@app.command("poll-email")
def poll_email(
    once: Annotated[bool, typer.Option("--once", help="one poll, then exit")] = False,
) -> None:
    """Poll the configured mailbox, then deliver the replies it queued."""
    from gateway.email_poller import poll_once, run_poller
    from gateway.outbox import deliver_due, run_outbox

    async def work(runtime: Runtime) -> int:
        if not runtime.settings.imap_enabled:
            err.print("IMAP is not configured: set CITYGATE_IMAP_HOST and CITYGATE_IMAP_USER")
            return 2
        if once:
            result = await poll_once(runtime)
            delivery = await deliver_due(runtime) if runtime.settings.smtp_enabled else None
            out.print(
                f"fetched {result.fetched}, handled {result.handled}, "
                f"repeats {result.duplicates}, failed {result.failed}"
                + (
                    f"; replies sent {delivery.sent}, to retry {delivery.retried}, "
                    f"dead {delivery.dead}"
                    if delivery
                    else ""
                )
            )
            return 1 if result.failed else 0
        stop = asyncio.Event()
        await asyncio.gather(run_poller(runtime, stop), run_outbox(runtime, stop))
        return 0

    raise typer.Exit(_run(work))


@app.command()
def migrate() -> None:
    """Apply the database migrations."""

    async def work(runtime: Runtime) -> None:
        await runtime.migrate()

    _run(work, migrate=False)
    out.print("database is at the latest migration")


@app.command()
def simulate(
    text: Annotated[str | None, typer.Argument(help="the message; omit for a console")] = None,
    channel: Annotated[str, typer.Option(help="sms or email")] = "sms",
    from_: Annotated[
        str | None, typer.Option("--from", help="sender phone or email address")
    ] = None,
) -> None:
    """Run a message through the whole pipeline and print the reply."""
    from gateway.pipeline import InboundText, process
    from parsers.addresses import normalize_email, normalize_phone
    from parsers.errors import ParseError
    from parsers.segments import segments

    if channel not in ("sms", "email"):
        raise typer.BadParameter("sms or email", param_hint="--channel")
    sender = from_ or (SIMULATED_PHONE if channel == "sms" else "citizen@example.org")
    try:
        address = normalize_phone(sender) if channel == "sms" else normalize_email(sender)
    except ParseError:
        raise typer.BadParameter(f"not a valid {channel} address", param_hint="--from") from None

    async def one(runtime: Runtime, body: str) -> None:
        if channel == "email":
            await one_email(runtime, body)
            return
        outcome = await process(
            runtime,
            InboundText(channel, f"sim-{uuid.uuid4().hex}", address, body, raw={"simulated": True}),
        )
        for message in outcome.messages:
            out.print(message.text, markup=False, highlight=False)
            if channel == "sms":
                size = f"{len(message.text)} characters, {segments(message.text)} SMS segment(s)"
                out.print(f"[dim]({size})[/dim]")

    async def one_email(runtime: Runtime, body: str) -> None:
        """The text as the body of a mail (its first line also the subject), through the
        whole email path; prints the reply that would be sent."""
        from email.message import EmailMessage
        from email.utils import make_msgid

        from gateway.email_channel import handle_email
        from models.messages import OutboundMessage

        body = body.replace("\\n", "\n")
        mail = EmailMessage()
        mail["From"], mail["To"] = address, runtime.settings.mail_from or "desk@localhost"
        mail["Subject"] = body.splitlines()[0] if body.strip() else ""
        mail["Message-ID"] = make_msgid(domain="simulator.invalid")
        mail.set_content(body)
        outcome = await handle_email(runtime, mail.as_bytes(), fallback_id=uuid.uuid4().hex)
        for message in outcome.messages:
            async with runtime.sessions() as session:
                row = await session.get(OutboundMessage, message.outbound_id)
            if row is not None and row.payload:
                headers = row.payload.split("\n\n", 1)[0]
                subject = next((h for h in headers.splitlines() if h.startswith("Subject:")), "")
                out.print(f"[dim]{subject}[/dim]", highlight=False)
            out.print(message.text, markup=False, highlight=False)
        if not outcome.messages:
            out.print("[dim](no reply: automatic mail, or the reply cap)[/dim]")

    async def work(runtime: Runtime) -> None:
        if text is not None:
            await one(runtime, text)
            return
        out.print(f"[bold]citygate simulator[/bold] — {channel} from {address}; Ctrl-D to quit")
        while True:
            try:
                line = await asyncio.to_thread(input, "> ")
            except EOFError:
                out.print()
                return
            await one(runtime, line)

    _run(work)


@app.command()
def services() -> None:
    """Print the service catalogue."""
    settings = _settings()
    from gateway.settings import load_city_config

    config = load_city_config(settings.config)
    table = Table("No.", "code", "name", "SLA days", "fields")
    for s in config.services:
        table.add_row(
            str(s.number),
            s.code,
            f"{s.name.en}\n{s.name.fa}",
            str(s.sla_days),
            ", ".join(f.key + ("" if f.required else "?") for f in s.fields),
        )
    out.print(table)


@keywords_app.command("list")
def keywords_list() -> None:
    """The effective keyword table: config plus operators' run-time keywords."""

    from models.keywords import operator_keywords

    async def work(runtime: Runtime) -> None:
        async with runtime.sessions() as session:
            table = await runtime.keyword_table(session)
            ids = {row.normal: row for row in await operator_keywords(session)}
        grid = Table("keyword", "matches as", "command", "language", "source")
        for normal, entry in sorted(table.entries.items(), key=lambda kv: kv[1].command):
            row = ids.get(normal)
            source = f"#{row.id} by {row.created_by}" if row else "config.yaml"
            grid.add_row(entry.keyword, normal, entry.command, entry.language, source)
        out.print(grid)

    _run(work)


@keywords_app.command("check")
def keywords_check() -> None:
    """Conflicts and problems in the keyword table; exit status 1 when there are errors."""
    from models.keywords import list_keyword_rows
    from parsers.grammar import check_conversation_words, check_keywords

    async def work(runtime: Runtime) -> int:
        async with runtime.sessions() as session:
            rows = runtime.config.keyword_triples() + await list_keyword_rows(session)
        problems = check_keywords(rows) + check_conversation_words(
            runtime.config.conversation_word_triples(), rows
        )
        for p in problems:
            colour = "red" if p.severity == "error" else "yellow"
            out.print(
                f"[{colour}]{p.severity}[/{colour}] {p.command}/{p.language} "
                f"'{p.keyword}': {p.reason}",
                highlight=False,
            )
        if not problems:
            out.print(f"{len(rows)} keywords, no problems")
        return 1 if any(p.severity == "error" for p in problems) else 0

    raise typer.Exit(_run(work))


@keywords_app.command("add")
def keywords_add(
    command: str,
    language: str,
    keyword: str,
    operator: Annotated[str, typer.Option(help="your name, for the audit trail")] = "cli",
) -> None:
    """Add a keyword; refused with the reasons when it would be ambiguous."""
    from gateway.keyword_work import KeywordRefused, add_keyword
    from gateway.settings import COMMANDS

    if command not in COMMANDS or language not in ("fa", "en"):
        err.print(f"command is one of {', '.join(COMMANDS)}; language fa or en")
        raise typer.Exit(2)

    async def work(runtime: Runtime) -> int:
        try:
            row = await add_keyword(
                runtime, command=command, language=language, keyword=keyword, actor=operator
            )
        except KeywordRefused as exc:
            for reason in exc.reasons:
                err.print(f"refused: {reason}", highlight=False)
            return 1
        out.print(f"added #{row.id}: '{row.keyword}' → {row.command} ({row.language})")
        return 0

    raise typer.Exit(_run(work))


@keywords_app.command("remove")
def keywords_remove(
    keyword_id: int,
    operator: Annotated[str, typer.Option(help="your name, for the audit trail")] = "cli",
) -> None:
    """Remove an operator keyword by its id (see `citygate keywords list`)."""
    from gateway.keyword_work import remove_keyword

    async def work(runtime: Runtime) -> int:
        if not await remove_keyword(runtime, keyword_id, actor=operator):
            err.print("no operator keyword with that id")
            return 1
        out.print(f"removed #{keyword_id}")
        return 0

    raise typer.Exit(_run(work))


@cases_app.command("show")
def cases_show(code: str) -> None:
    """A case with its history."""
    from models.cases import find_case
    from parsers import tracking
    from parsers.errors import ParseError

    try:
        compact = tracking.validate(code)
    except ParseError as exc:
        err.print(f"not a tracking code: {exc}")
        raise typer.Exit(1) from None

    async def work(runtime: Runtime) -> int:
        async with runtime.sessions() as session:
            case = await find_case(session, code=compact)
            if case is None:
                err.print("no case with that code")
                return 1
            cfg = runtime.config
            out.print(f"[bold]{tracking.format_code(case.code)}[/bold]  {case.service}")
            out.print(f"status: {case.status} ({cfg.status_name(case.status, 'fa')})")
            out.print(f"channel: {case.channel}   district: {case.district or '-'}")
            for key, value in case.fields.items():
                out.print(f"  {key}: {value}", markup=False)
            grid = Table("when", "event", "by", "note")
            for e in case.events:
                change = f"{e.status_from or ''} → {e.status_to}" if e.status_to else e.kind
                grid.add_row(e.created_at.isoformat(timespec="seconds"), change, e.actor, e.note)
            out.print(grid)
            return 0

    raise typer.Exit(_run(work))


@cases_app.command("set-status")
def cases_set_status(
    code: str,
    status: str,
    note: Annotated[str | None, typer.Option(help="note for the case history")] = None,
) -> None:
    """Move a case to another status."""
    from gateway.case_work import Change, apply_change
    from models.cases import find_case
    from parsers import tracking
    from parsers.errors import ParseError

    try:
        compact = tracking.validate(code)
    except ParseError as exc:
        err.print(f"not a tracking code: {exc}")
        raise typer.Exit(1) from None

    async def work(runtime: Runtime) -> int:
        if status not in runtime.config.statuses:
            err.print(f"unknown status; one of: {', '.join(runtime.config.statuses)}")
            return 1
        async with runtime.sessions.begin() as session:
            case = await find_case(session, code=compact)
            if case is None:
                err.print("no case with that code")
                return 1
            sent = await apply_change(
                session, runtime, case, Change(status=status, note=note), actor="cli"
            )
        out.print(f"{tracking.format_code(compact)}: {status}")
        if sent is not None:
            out.print(f"citizen notified by {sent.channel}: {sent.status}")
        return 0

    raise typer.Exit(_run(work))


def main() -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        app()
    except ConfigError as exc:
        err.print(f"[red]configuration refused[/red]\n{exc}", highlight=False)
        sys.exit(2)
