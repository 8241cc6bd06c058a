"""The command parser alone: normalise+parse messages per second on one core.

    python -m bench.parser [--limit N] [--runs 3] [--min-seconds 1.0]

The messages are the SMS corpora in ../shared/corpora/sms: the second column of the
UCI SMSSpamCollection (5,574 English texts) and the "text" of the Persian jsonl (121),
interleaved so that a `--limit` keeps both languages. Each run calls
`parsers.grammar.parse(text, table)` over all of them, pass after pass, for at least
`--min-seconds`; `table` is `KeywordTable.build(load_city_config(config.yaml)
.keyword_triples())`. The baseline is an empty loop over the same list. The process
pins itself to one CPU. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from itertools import zip_longest
from pathlib import Path
from typing import Any

from bench.common import CONFIG, CORPORA, summarize
from gateway.settings import load_city_config
from parsers.grammar import KeywordTable, parse

UCI = CORPORA / "sms" / "uci-sms-spam-collection" / "SMSSpamCollection"
PERSIAN = CORPORA / "sms" / "persian-sms-dataset-semnan" / "sms_open_subset.utf8.jsonl"


def load_messages(limit: int | None = None) -> list[str]:
    for path in (UCI, PERSIAN):
        if not path.exists():
            raise FileNotFoundError(f"corpus missing: {path}")
    english = [
        line.split("\t", 1)[1]
        for line in UCI.read_text(encoding="utf-8").splitlines()
        if "\t" in line
    ]
    persian = [
        str(json.loads(line)["text"])
        for line in PERSIAN.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    # one Persian text after every ~46 English ones, so any prefix has both
    step = max(1, len(english) // max(1, len(persian)))
    mixed: list[str] = []
    chunks = [english[i : i + step] for i in range(0, len(english), step)]
    for chunk, fa in zip_longest(chunks, persian):
        mixed.extend(chunk or [])
        if fa is not None:
            mixed.append(fa)
    return mixed[:limit] if limit else mixed


def _timed(work: Any, texts: list[str], table: KeywordTable, min_seconds: float) -> float:
    """Messages per second of `work` over `texts`, repeated for at least `min_seconds`."""
    done = 0
    started = time.perf_counter()
    while True:
        work(texts, table)
        done += len(texts)
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return done / elapsed


def _parse_all(texts: list[str], table: KeywordTable) -> None:
    for text in texts:
        parse(text, table)


def _empty_loop(texts: list[str], table: KeywordTable) -> None:
    for _text in texts:
        pass


def measure(limit: int | None, runs: int, min_seconds: float) -> dict[str, Any]:
    texts = load_messages(limit)
    table = KeywordTable.build(load_city_config(Path(CONFIG)).keyword_triples())
    commands = sum(parse(t, table).command is not None for t in texts)  # and a warm-up
    rates, baselines = [], []
    for _ in range(runs):
        rates.append(_timed(_parse_all, texts, table, min_seconds))
        baselines.append(_timed(_empty_loop, texts, table, min_seconds))
    per_message_us = [1e6 / r - 1e6 / b for r, b in zip(rates, baselines, strict=True)]
    return {
        "messages": len(texts),
        "parsed_as_command": commands,
        "msgs_per_s": summarize(rates),
        "empty_loop_msgs_per_s": summarize(baselines),
        "net_us_per_msg": summarize(per_message_us),
        "min_seconds_per_run": min_seconds,
        "cpu": sorted(os.sched_getaffinity(0)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="first N messages only")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--min-seconds", type=float, default=1.0, help="per run")
    args = parser.parse_args(argv)
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {allowed[-1]})
    json.dump(measure(args.limit, args.runs, args.min_seconds), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
