"""Operator subcommands of `citygate`: the keyword table and work on cases."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from gateway.cli_common import err, out
from gateway.cli_common import run_with_runtime as _run
from gateway.runtime import Runtime

keywords_app = typer.Typer(help="The command keyword table", no_args_is_help=True)
cases_app = typer.Typer(help="Operator work on cases", no_args_is_help=True)


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


def _tracking_code(code: str) -> str:
    """The compact code a citizen's or operator's typing means; exit 1 when it is none."""
    from parsers import tracking
    from parsers.errors import ParseError

    try:
        return tracking.validate(code)
    except ParseError as exc:
        err.print(f"not a tracking code: {exc}")
        raise typer.Exit(1) from None


@cases_app.command("show")
def cases_show(code: str) -> None:
    """A case with its history."""
    from models.cases import find_case
    from parsers import tracking

    compact = _tracking_code(code)

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

    compact = _tracking_code(code)

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
