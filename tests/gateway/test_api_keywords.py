"""Operator keywords: conflicts refused with reasons, changes audited and live everywhere."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from sqlalchemy import select

from models.audit import AuditEntry
from tests.support import ROOT, Twilio, make_settings

MARYAM = "maryam-token-0123456789"
ALI = "ali-token-0123456789abc"


@pytest.fixture
def settings(database_url):
    return make_settings(database_url, operator_tokens=f"maryam:{MARYAM},ali:{ALI}")


def as_(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_added_keyword_works_at_once_and_is_audited(client, twilio: Twilio, app):
    assert "متوجه نشدیم" in await twilio.sms("استعلام ۴۸۲۱ ۳۳۰۷ ۶۶۳۴")
    added = await client.post(
        "/api/v1/keywords",
        json={"command": "status", "language": "fa", "keyword": "استعلام"},
        headers=as_(MARYAM),
    )
    assert added.status_code == 201, added.text
    assert added.json()["created_by"] == "maryam"
    assert "پیدا نشد" in await twilio.sms("استعلام ۴۸۲۱ ۳۳۰۷ ۶۶۳۴")
    table = (await client.get("/api/v1/keywords", headers=as_(ALI))).json()
    sources = {(k["keyword"], k["source"]) for k in table["keywords"]}
    assert ("استعلام", "operator") in sources and ("STATUS", "config") in sources
    async with app.state.runtime.sessions() as session:
        entry = (await session.execute(select(AuditEntry))).scalar_one()
    assert (entry.actor, entry.action, entry.subject) == ("maryam", "keyword.add", "استعلام")


@pytest.mark.parametrize(
    "command, keyword, reason",
    [
        ("status", "راهنما", "already a keyword of command 'help'"),
        ("status", "راهنمـا", "already a keyword of command 'help'"),  # tatweel
        ("help", "CANCEL", "carrier word meaning 'stop'"),
        ("new", "yes", "carrier word meaning 'start'"),
        ("new", "لغو", "carrier word meaning 'stop'"),
        ("help", "STATSU", "close to 'status'"),
        ("status", "5", "number"),
        ("exit", "بله", "form word 'confirm'"),
        ("new", "", "String should have at least 1 character"),
    ],
)
async def test_conflicting_keywords_are_refused_with_the_reason(client, command, keyword, reason):
    response = await client.post(
        "/api/v1/keywords",
        json={"command": command, "language": "fa", "keyword": keyword},
        headers=as_(MARYAM),
    )
    assert response.status_code in (409, 422)
    assert reason in response.text


async def test_change_and_remove(client, twilio: Twilio):
    created = await client.post(
        "/api/v1/keywords",
        json={"command": "mycases", "language": "en", "keyword": "MINE"},
        headers=as_(ALI),
    )
    keyword_id = created.json()["id"]
    clash = await client.patch(
        f"/api/v1/keywords/{keyword_id}", json={"keyword": "HELP"}, headers=as_(ALI)
    )
    assert clash.status_code == 409
    moved = await client.patch(
        f"/api/v1/keywords/{keyword_id}", json={"keyword": "MY FILES"}, headers=as_(ALI)
    )
    assert moved.status_code == 200 and moved.json()["matches_as"] == "my files"
    assert "no open requests" in await twilio.sms("my files")
    gone = await client.delete(f"/api/v1/keywords/{keyword_id}", headers=as_(ALI))
    assert gone.status_code == 204
    assert "open requests" not in await twilio.sms("my files")
    missing = await client.delete(f"/api/v1/keywords/{keyword_id}", headers=as_(ALI))
    assert missing.status_code == 404


async def test_tokens_are_named_and_checked(client):
    assert (await client.get("/api/v1/keywords")).status_code == 401
    assert (await client.get("/api/v1/keywords", headers=as_("x" * 24))).status_code == 401
    assert (await client.get("/api/v1/keywords", headers=as_(MARYAM))).status_code == 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(database_url: str, port: int, tmp_path) -> subprocess.Popen:
    env = {
        **os.environ,
        "CITYGATE_CONFIG": str(ROOT / "config.yaml"),
        "CITYGATE_DATABASE_URL": database_url,
        "CITYGATE_DEV_MODE": "1",
        "CITYGATE_OPERATOR_TOKENS": f"maryam:{MARYAM}",
        "CITYGATE_DATA_DIR": str(tmp_path),
    }
    env.pop("TWILIO_AUTH_TOKEN", None)
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from gateway.cli import main; main()",
            "serve",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_ready(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stderr.read().decode()[-2000:])
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("gateway did not become ready")


def test_a_keyword_added_in_one_process_acts_in_another(database_url, tmp_path):
    ports = [_free_port(), _free_port()]
    processes = [_serve(database_url, port, tmp_path) for port in ports]
    try:
        for port, process in zip(ports, processes, strict=True):
            _wait_ready(port, process)
        added = httpx.post(
            f"http://127.0.0.1:{ports[0]}/api/v1/keywords",
            json={"command": "help", "language": "fa", "keyword": "دستورها"},
            headers=as_(MARYAM),
            timeout=10,
        )
        assert added.status_code == 201, added.text
        # the very next message on the other process already knows the word
        reply = httpx.post(
            f"http://127.0.0.1:{ports[1]}/sms/twilio",
            data={"MessageSid": "SM" + "a" * 32, "From": "+989121234567", "Body": "دستورها"},
            timeout=10,
        )
        assert reply.status_code == 200 and "وضعیت" in reply.text
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
