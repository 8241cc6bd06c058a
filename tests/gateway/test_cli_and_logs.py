"""The `citygate` command and what the logs may hold."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT, Twilio

CITIZEN = "+989127654321"


def citygate(
    tmp_path: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CITYGATE_CONFIG": str(ROOT / "config.yaml"),
        "CITYGATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db",
        "CITYGATE_DATA_DIR": str(tmp_path),
    }
    return subprocess.run(
        [sys.executable, "-c", "from gateway.cli import main; main()", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_simulate_one_message_and_console(tmp_path):
    result = citygate(tmp_path, "simulate", "راهنما")
    assert result.returncode == 0, result.stderr
    assert "وضعیت" in result.stdout
    assert "SMS segment" in result.stdout

    result = citygate(tmp_path, "simulate", stdin="LANG en\nhelp\nSTATUS 4821 3307 6635\n")
    assert result.returncode == 0, result.stderr
    assert "Replies will now be in English." in result.stdout
    assert "Commands:" in result.stdout
    assert "mistyped" in result.stdout


def test_simulate_email_prints_the_reply_mail(tmp_path):
    result = citygate(
        tmp_path, "simulate", "--channel", "email", "--from", "Maryam@Example.org", "NEW 6"
    )
    assert result.returncode == 0, result.stderr
    assert "Subject: Re: NEW 6" in result.stdout
    assert "Service: 6" in result.stdout and "Property postal code:" in result.stdout


def test_cases_cli_and_keywords(tmp_path):
    assert citygate(tmp_path, "migrate").returncode == 0
    listed = citygate(tmp_path, "keywords", "list")
    assert listed.returncode == 0 and "وضعیت" in listed.stdout
    check = citygate(tmp_path, "keywords", "check")
    assert check.returncode == 0, check.stdout
    added = citygate(tmp_path, "keywords", "add", "status", "fa", "استعلام", "--operator", "sara")
    assert added.returncode == 0, added.stderr
    assert "#1 by sara" in citygate(tmp_path, "keywords", "list").stdout
    assert "پیدا نشد" in citygate(tmp_path, "simulate", "استعلام 4821 3307 6634").stdout
    refused = citygate(tmp_path, "keywords", "add", "help", "en", "CANCEL")
    assert refused.returncode == 1 and "carrier word" in refused.stderr
    assert citygate(tmp_path, "keywords", "remove", "1").returncode == 0
    missing = citygate(tmp_path, "cases", "show", "4821 3307 6634")
    assert missing.returncode == 1
    assert "no case" in missing.stderr
    typo = citygate(tmp_path, "cases", "set-status", "4821 3307 6635", "closed")
    assert typo.returncode == 1


async def test_logs_never_hold_a_full_phone_number(twilio: Twilio, caplog):
    caplog.set_level(logging.INFO)
    await twilio.sms("HELP", sender=CITIZEN)
    await twilio.sms("STATUS 4821 3307 6634", sender=CITIZEN)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "sms from" in text
    for form in (CITIZEN, CITIZEN[1:], "09127654321", "9127654321"):
        assert form not in text
