"""The `citygate` command: serve, simulate, migrate, keywords, services, cases.

Every command reads `config.yaml` (path in CITYGATE_CONFIG) and the environment; a
wrong configuration is reported with file, key and reason, and exit status 2.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from typing import Annotated

import typer
from rich.table import Table

from gateway.cli_common import err, out, settings_from_env
from gateway.cli_common import run_with_runtime as _run
from gateway.cli_operators import cases_app, keywords_app
from gateway.runtime import Runtime
from gateway.settings import ConfigError, Settings

app = typer.Typer(help="citygate: SMS and email request gateway", no_args_is_help=True)
app.add_typer(keywords_app, name="keywords")
app.add_typer(cases_app, name="cases")
SIMULATED_PHONE = "+989120000000"


def _settings() -> Settings:
    return settings_from_env()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 1,
    poller: Annotated[bool, typer.Option(help="poll the mailbox (when IMAP is set)")] = True,
    outbox: Annotated[bool, typer.Option(help="send queued mail (when SMTP is set)")] = True,
    http: Annotated[bool, typer.Option(help="serve HTTP (webhook, API, admin, health)")] = True,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="with --no-http: serve Prometheus /metrics on this port (on --host)"),
    ] = None,
) -> None:
    """Run the gateway: HTTP (Twilio webhook, operator API, health), the email poller and
    the outbox worker in one process; --no-http / --no-poller / --no-outbox turn parts
    off, so that at scale each runs in processes of its own (docs/OPERATIONS.md)."""
    from gateway import serving
    from gateway.access_log import LOG_CONFIG

    logging.getLogger().setLevel(logging.INFO)

    import os

    from gateway.app import DEV_MODE_BANNER, check_startable

    if not poller:
        os.environ["CITYGATE_RUN_POLLER"] = "0"
    if not outbox:
        os.environ["CITYGATE_RUN_OUTBOX"] = "0"
    settings = _settings()
    check_startable(settings, http=http)
    runtime = Runtime.create(settings)

    async def prepare() -> None:
        try:
            if runtime.is_sqlite:
                await runtime.migrate()
        finally:
            await runtime.close()

    asyncio.run(prepare())
    if not http:
        raise typer.Exit(_serve_workers(settings, host, metrics_port))
    if settings.twilio_auth_token is None:
        err.print(f"[bold red]{DEV_MODE_BANNER}[/bold red]")
    if workers > 1 and runtime.is_sqlite:
        err.print(
            "[yellow]SQLite has one writer: the workers take turns (a lock file beside "
            "the database, docs/OPERATIONS.md); PostgreSQL scales further.[/yellow]"
        )
    serving.run(  # several workers: each on a socket of its own (gateway/serving.py)
        "gateway.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        log_level="info",
        access_log=False,  # the app writes it (gateway.access_log), uvicorn's format
        log_config=LOG_CONFIG,
    )


def _serve_workers(settings: Settings, host: str, metrics_port: int | None) -> int:
    """`serve --no-http`: the poller and the outbox worker alone, until SIGTERM or SIGINT;
    their metrics (the poller's lock, lag and mail, the outbox's sends, errors) on
    `metrics_port` when given."""
    import signal

    from prometheus_client import start_http_server

    from gateway.app import start_workers

    if metrics_port is not None:
        start_http_server(metrics_port, addr=host)

    async def work() -> int:
        runtime = Runtime.create(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            tasks = start_workers(runtime, stop)
            if not tasks:
                err.print(
                    "nothing to run: --no-http, and neither the poller (IMAP) nor the "
                    "outbox (SMTP or Twilio REST) is configured and turned on"
                )
                return 2
            logging.getLogger("citygate").info(
                "serving without HTTP: %s", ", ".join(t.get_name() for t in tasks)
            )
            await stop.wait()
            await asyncio.gather(*tasks, return_exceptions=True)
            return 0
        finally:
            await runtime.close()

    return asyncio.run(work())


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
