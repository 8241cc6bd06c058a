"""What a form conversation shows: service-list pages, questions, summaries.

Every text built here stays within two SMS segments; a test walks the whole catalogue
in both languages to hold it to that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from handlers.base import MAX_SEGMENTS, Context, ServiceSpec
from parsers.display import localize_digits
from parsers.fields import FieldSpec, Value, check_form, display_value
from parsers.normalize import normalize
from parsers.segments import segments


def is_word(ctx: Context, kind: str, text: str) -> bool:
    """Whether `text` is one of the conversation words of `kind`, in any language."""
    normal = normalize(text)
    return bool(normal) and normal in {normalize(w) for w in ctx.texts.words(kind)}


def menu_pages(ctx: Context) -> list[list[str]]:
    """The catalogue as numbered lines, packed into pages that fit with header and footer."""
    frame = "\n".join(
        [
            ctx.say("menu_header", page=9, pages=9),
            ctx.say("menu_footer_more", more=ctx.word("more")),
        ]
    )
    pages: list[list[str]] = [[]]
    for service in sorted(ctx.texts.services, key=lambda s: s.number):
        line = localize_digits(f"{service.number}. {service.name.get(ctx.language)}", ctx.language)
        candidate = [*pages[-1], line]
        if pages[-1] and segments(frame + "\n" + "\n".join(candidate)) > MAX_SEGMENTS:
            pages.append([line])
        else:
            pages[-1] = candidate
    return pages


def menu_page(ctx: Context, page: int) -> str:
    pages = menu_pages(ctx)
    page = max(0, min(page, len(pages) - 1))
    last = page == len(pages) - 1
    footer = (
        ctx.say("menu_footer_last") if last else ctx.say("menu_footer_more", more=ctx.word("more"))
    )
    header = ctx.say("menu_header", page=page + 1, pages=len(pages))
    return "\n".join([header, *pages[page], footer])


def question(ctx: Context, service: ServiceSpec, step: int) -> str:
    """The question for field `step`, with options and help when they fit."""
    spec = service.fields[step]
    lines = [
        ctx.say(
            "question",
            step=step + 1,
            total=len(service.fields),
            label=spec.label.get(ctx.language),
        )
    ]
    if not spec.required:
        lines.append(ctx.say("question_optional", skip=ctx.word("skip")))
    if spec.type == "choice":
        options = [
            f"{i}) {option.label.get(ctx.language)}"
            for i, option in enumerate(spec.options or [], start=1)
        ]
        lines.append(localize_digits("  ".join(options), ctx.language))
    if spec.help is not None:
        with_help = [*lines, spec.help.get(ctx.language)]
        if segments("\n".join(with_help)) <= MAX_SEGMENTS:
            lines = with_help
    return "\n".join(lines)


def summary_lines(ctx: Context, service: ServiceSpec, answers: Mapping[str, str | None]) -> str:
    """The header and one numbered line per answer, shortened to fit one message."""
    check = check_form(
        service.fields,
        answers,
        districts=ctx.texts.district_numbers(),
        region=ctx.texts.default_region,
    )
    header = ctx.say("summary_header", service=service.name.get(ctx.language))
    shown = [_shown(ctx, spec, check.values.get(spec.key)) for spec in service.fields]
    for labels in (True, False):
        width = max(len(v) for v in shown)
        while width >= 6:
            short = [v if len(v) <= width else v[: width - 1] + "…" for v in shown]
            body = header + "\n" + _numbered(ctx, service.fields, short, labels=labels)
            if segments(body) <= MAX_SEGMENTS:
                return body
            width -= 1 if labels is False else max(1, width // 4)
            if labels and width < 10:
                break
    return header


def _shown(ctx: Context, spec: FieldSpec, value: Value) -> str:
    return display_value(
        spec, value, ctx.language, lambda n: ctx.texts.district_label(n, ctx.language)
    )


def _numbered(
    ctx: Context, fields: Sequence[FieldSpec], shown: Sequence[str], *, labels: bool
) -> str:
    lines = []
    for i, (spec, value) in enumerate(zip(fields, shown, strict=True), start=1):
        number = localize_digits(str(i), ctx.language)
        label = f"{spec.label.get(ctx.language)}: " if labels else ""
        lines.append(f"{number}) {label}{value}")
    return "\n".join(lines)


def summary_footer(ctx: Context) -> str:
    return ctx.say(
        "summary_footer",
        yes=ctx.word("confirm"),
        edit=ctx.word("edit"),
        exit=ctx.keyword("exit"),
    )


def form_template(
    ctx: Context, service: ServiceSpec, answers: Mapping[str, str | None] | None = None
) -> str:
    """A fill-in form for mail: help lines first, then one `Label: value` line a field."""
    answers = answers or {}
    lines = [
        ctx.say(
            "email_template_intro",
            service=service.name.get(ctx.language),
            number=service.number,
        ),
        "",
    ]
    for i, spec in enumerate(service.fields, start=1):
        note = spec.help.get(ctx.language) if spec.help else ""
        if spec.type == "choice":
            note += " — " + " / ".join(o.label.get(ctx.language) for o in spec.options or [])
        optional = "" if spec.required else " " + ctx.say("email_optional")
        lines.append(
            localize_digits(f"{i}. {spec.label.get(ctx.language)}{optional} — ", ctx.language)
            + note.replace(":", " ")
        )
    lines += ["", f"{ctx.say('email_service_label')}: {service.number}"]
    for spec in service.fields:
        lines.append(f"{spec.label.get(ctx.language)}: {answers.get(spec.key) or ''}".rstrip())
    return "\n".join(lines)
