"""The tables `python -m bench` prints (Markdown, pasted as they are into
docs/BENCHMARKS.md) and the targets of the "Performance" issue next to the figures."""

from __future__ import annotations

from typing import Any

from bench.common import Part

TARGETS = {
    "ratio": 0.40,  # citygate/ceiling on SQLite x1 and PostgreSQL x2
    "p99_ms": 50.0,  # at half of the measured maximum, open loop
    "parser": 50_000.0,  # msgs/s on one core
    "email": 100.0,  # emails/s
    "rss_mb": 150.0,  # peak RSS per server process
    "scaling": 1.7,  # PostgreSQL x2 over x1
}


def fig(stat: dict[str, Any] | None, digits: int = 1) -> str:
    """ "median (min–max)", or "—"."""
    if not stat or stat.get("median") is None:
        return "—"
    med, lo, hi = stat["median"], stat["min"], stat["max"]
    if lo == hi:
        return f"{med:,.{digits}f}"
    return f"{med:,.{digits}f} ({lo:,.{digits}f}–{hi:,.{digits}f})"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _median(row: dict[str, Any] | None, key: str) -> float | None:
    return row[key]["median"] if row and row.get(key) else None


def _find(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _mark(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "**not met**")


def _paired(row: dict[str, Any]) -> str:
    """Each run over the ceiling run just before it: median (min–max), as a percentage."""
    stat = row.get("paired_ratio")
    if not stat or stat.get("median") is None:
        return ""
    return fig({k: (v * 100 if isinstance(v, float) else v) for k, v in stat.items()}) + " %"


def webhook_table(part: Part) -> str:
    rows = []
    for r in part.rows:
        ceiling = _find(
            part.rows, target="ceiling", workers=r["workers"], connections=r["connections"]
        )
        ratio = _ratio(_median(r, "rps"), _median(ceiling, "rps"))
        rows.append(
            [
                r["target"],
                r["db"],
                str(r["workers"]),
                str(r["connections"]),
                fig(r["rps"]),
                fig(r["p50_ms"]),
                fig(r["p99_ms"]),
                f"{r['non_2xx']} / {r['socket_errors']} / {r['timeouts']}",
                f"{ratio:.1%}" if r["target"] == "citygate" and ratio is not None else "",
                _paired(r),
                fig(r["server_cpu_cores"], 2),
                fig(r.get("postgres_cpu_cores"), 2) if r["db"] == "postgres" else "",
                fig(r.get("other_cpu_cores"), 2),
            ]
        )
    header = ["server", "db", "procs", "conns", "req/s", "p50 ms", "p99 ms"]
    header += ["non-2xx / socket err / timeouts", "citygate/ceiling", "paired runs"]
    header += ["server CPU (cores)"]
    header += ["PostgreSQL CPU", "other CPU"]
    return _table(header, rows)


def fixed_rate_table(part: Part) -> str:
    rows = [
        [
            r["db"],
            str(r["workers"]),
            f"{r['rate']:.1f}",
            fig(r["achieved_rps"]),
            fig(r["p50_ms"]),
            fig(r["p99_ms"]),
            fig(r["send_lag_p99_ms"]),
            fig(r.get("generator_cores"), 2),
            str(sum(r["errors"].values())),
            _mark(r["p99_ms"]["median"] <= TARGETS["p99_ms"]),
        ]
        for r in part.rows
    ]
    header = ["db", "procs", "rate req/s", "sent req/s", "p50 ms", "p99 ms"]
    header += ["generator lag p99 ms", "generator CPU (cores)", "errors", "p99 ≤ 50 ms"]
    return _table(header, rows)


def parser_table(part: Part) -> str:
    rows = [
        [
            str(r["messages"]),
            fig(r["msgs_per_s"], 0),
            fig(r["empty_loop_msgs_per_s"], 0),
            fig(r["net_us_per_msg"], 2),
            _mark(r["msgs_per_s"]["median"] >= TARGETS["parser"]),
        ]
        for r in part.rows
    ]
    header = ["messages", "parse msgs/s", "empty loop msgs/s", "µs/msg", "≥ 50,000/s"]
    return _table(header, rows)


def conversation_table(part: Part) -> str:
    rows = [
        [
            r["db"],
            str(r["workers"]),
            str(r["concurrency"]),
            fig(r["forms_per_s"], 2),
            fig(r["messages_per_s"]),
            fig(r["form_p50_s"], 2),
            str(r["errors"]),
        ]
        for r in part.rows
    ]
    header = ["db", "procs", "citizens", "forms/s", "messages/s", "form p50 s", "errors"]
    return _table(header, rows)


def email_table(part: Part) -> str:
    rows = [
        [
            r["db"],
            str(r["n"]),
            fig(r["emails_per_s"]),
            fig(r["outbox_per_s"]),
            fig(r["poll_seconds"], 2),
            _mark(r["emails_per_s"]["median"] >= TARGETS["email"]),
        ]
        for r in part.rows
    ]
    header = ["db", "emails", "emails/s", "outbox sent/s", "poll s", "≥ 100/s"]
    return _table(header, rows)


def memory_table(part: Part) -> str:
    rows = []
    for r in part.rows:
        every = ", ".join(f"{p['role']} {p['vmhwm_mb']:.0f}" for p in r["processes"])
        peak = r["worker_peak_mb"]
        rows.append(
            [
                r["target"],
                r["db"],
                str(r["workers"]),
                f"{peak:.1f}" if peak else "—",
                every,
                _mark(peak <= TARGETS["rss_mb"]) if peak and r["target"] == "citygate" else "",
            ]
        )
    header = ["server", "db", "procs", "peak RSS/worker MB", "VmHWM of each process MB"]
    return _table([*header, "≤ 150 MB"], rows)


def targets(parts: dict[str, Part]) -> list[dict[str, Any]]:
    """Each target of the issue with the figure measured and whether it is met."""
    found: list[dict[str, Any]] = []

    def add(name: str, value: float | None, ok: bool | None, shown: str) -> None:
        found.append({"target": name, "value": value, "met": ok, "shown": shown})

    web = parts.get("webhook")
    rows = web.rows if web else []
    for db, workers in (("sqlite", 1), ("postgres", 2)):
        for r in [r for r in rows if (r["db"], r["workers"]) == (db, workers)]:
            ceiling = _find(rows, target="ceiling", workers=workers, connections=r["connections"])
            ratio = _ratio(_median(r, "rps"), _median(ceiling, "rps"))
            paired = _median(r, "paired_ratio")
            name = f"webhook {db} x{workers} c={r['connections']} ≥ 40 % of ceiling"
            shown = f"{ratio:.1%}" if ratio is not None else "—"
            if paired is not None:  # met only when both ways of comparing say so
                shown += f" (paired runs {paired:.1%})"
                ratio = min(ratio, paired) if ratio is not None else paired
            add(name, ratio, None if ratio is None else ratio >= TARGETS["ratio"], shown)
    for r in [r for r in rows if (r["db"], r["workers"]) == ("postgres", 2)]:
        one = _find(rows, db="postgres", workers=1, connections=r["connections"])
        scale = _ratio(_median(r, "rps"), _median(one, "rps"))
        shown = f"{scale:.2f}x" if scale is not None else "—"
        ok = None if scale is None else scale >= TARGETS["scaling"]
        add(f"postgres x2 ≥ 1.7 x one process, c={r['connections']}", scale, ok, shown)
    for r in parts["fixed_rate"].rows if "fixed_rate" in parts else []:
        p99 = r["p99_ms"]["median"]
        add(
            f"p99 ≤ 50 ms at half of max, {r['db']} x{r['workers']} ({r['rate']:.0f}/s)",
            p99,
            p99 <= TARGETS["p99_ms"],
            f"{p99:.1f} ms",
        )
    for r in parts["parser"].rows if "parser" in parts else []:
        rate = r["msgs_per_s"]["median"]
        add("parser ≥ 50,000 msgs/s", rate, rate >= TARGETS["parser"], f"{rate:,.0f}/s")
    for r in parts["email"].rows if "email" in parts else []:
        rate = r["emails_per_s"]["median"]
        add(f"email {r['db']} ≥ 100 emails/s", rate, rate >= TARGETS["email"], f"{rate:.1f}/s")
    for r in parts["memory"].rows if "memory" in parts else []:
        peak = r["worker_peak_mb"]
        if r["target"] == "citygate" and peak:
            name = f"RSS ≤ 150 MB, {r['db']} x{r['workers']}"
            add(name, peak, peak <= TARGETS["rss_mb"], f"{peak:.0f} MB")
    return found


def targets_table(found: list[dict[str, Any]]) -> str:
    return _table(
        ["target", "measured", ""], [[t["target"], t["shown"], _mark(t["met"])] for t in found]
    )


TABLES = {
    "webhook": ("Webhook, closed loop (wrk)", webhook_table),
    "fixed_rate": ("Latency at half of the maximum, open loop", fixed_rate_table),
    "parser": ("Parser, one core", parser_table),
    "conversation": ("Forms through the webhook", conversation_table),
    "email": ("Email: Dovecot → poll_once → deliver_due → SMTP", email_table),
    "memory": ("Peak RSS (VmHWM) per server process", memory_table),
}


def render(parts: dict[str, Part], found: list[dict[str, Any]]) -> str:
    out = []
    for key, (title, table) in TABLES.items():
        part = parts.get(key)
        if part is None:
            continue
        out.append(f"### {title}\n")
        if part.skipped:
            out.append(f"skipped: {part.skipped}\n")
        elif part.rows:
            out.append(table(part) + "\n")
        for line in part.problems:
            out.append(f"- PROBLEM: {line}")
        for line in part.notes:
            out.append(f"- note: {line}")
        if part.problems or part.notes:
            out.append("")
    if found:
        out.append("### Targets\n")
        out.append(targets_table(found) + "\n")
    return "\n".join(out)
