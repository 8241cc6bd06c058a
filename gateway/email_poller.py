"""The IMAP poller: the city's mailbox in, every message handled once, then filed away.

In chunks of up to `imap_chunk` messages (and 32 MB): fetch each by UID, store and
handle them together (`gateway.email_channel`; their writes share group commits), then
move them to the processed folder, or to the failed folder with the error recorded when
one cannot be handled; the UIDVALIDITY+UID cursor advances past the chunk either way,
so one bad message never blocks the rest. A crash mid-chunk reads the chunk again and
the stored provider ids answer each message once. Every IMAP command has a timeout; a
dropped connection is retried with backoff; IDLE is used when the server offers it,
polling otherwise. Only the process holding the mailbox's lock polls it
(`gateway.mailbox_lock`); the others stand by and take over when it dies.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import ssl
from dataclasses import dataclass

from aioimaplib import IMAP4, IMAP4_SSL, Command, Response

from gateway.blobs import store_blob, store_blobs
from gateway.email_channel import handle_email
from gateway.mailbox_lock import AdvisoryLock, mailbox_lock
from gateway.metrics import ERRORS, POLLER_HOLDS, POLLER_LAST_SUCCESS, POLLER_MAIL
from gateway.runtime import Runtime
from gateway.settings import Settings
from models.mail import get_cursor, save_cursor
from models.messages import InboundMessage

log = logging.getLogger("citygate.poller")
_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_UIDNEXT = re.compile(rb"UIDNEXT (\d+)")
_FETCH_UID = re.compile(rb"UID (\d+)")
# A chunk of messages handled together stops growing at this many bytes of mail.
CHUNK_BYTES = 32 * 1024 * 1024


class ImapError(Exception):
    """The server refused a command or the connection broke."""


@dataclass
class PollResult:
    fetched: int = 0
    handled: int = 0
    failed: int = 0
    duplicates: int = 0


def _ok(response: Response, what: str) -> Response:
    if response.result != "OK":
        detail = b" ".join(bytes(x) for x in response.lines[-1:]).decode("utf-8", "replace")
        raise ImapError(f"{what}: {response.result} {detail}")
    return response


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def connect(runtime: Runtime) -> IMAP4:
    """A logged-in client, over TLS, STARTTLS or plain as configured."""
    s = runtime.settings
    host, timeout = s.imap_host or "127.0.0.1", s.imap_timeout
    client: IMAP4
    context = tls_context(s.imap_ca_file)
    if s.imap_security == "tls":
        client = IMAP4_SSL(host=host, port=s.imap_port or 993, timeout=timeout, ssl_context=context)
    else:
        client = IMAP4(host=host, port=s.imap_port or 143, timeout=timeout)
    await client.wait_hello_from_server()
    if s.imap_security == "starttls":
        await _starttls(client, host, timeout, context)
    password = s.imap_password.get_secret_value() if s.imap_password else ""
    _ok(await client.login(s.imap_user or "", password), "LOGIN")
    # the capabilities after login (MOVE, UIDPLUS, IDLE) are not those of the greeting
    await asyncio.wait_for(client.protocol.capability(), timeout)
    return client


def tls_context(ca_file: object | None) -> ssl.SSLContext:
    """Certificates verified against the system's authorities, or a given CA file."""
    return ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(ca_file) if ca_file else None
    )


async def _starttls(client: IMAP4, host: str, timeout: float, context: ssl.SSLContext) -> None:
    """Upgrade the connection in place (aioimaplib lacks STARTTLS of its own)."""
    protocol = client.protocol
    # simple_command() refuses STARTTLS (NotImplementedError): send the command itself.
    command = Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
    _ok(await asyncio.wait_for(protocol.execute(command), timeout), "STARTTLS")
    loop = asyncio.get_running_loop()
    transport = await asyncio.wait_for(
        loop.start_tls(protocol.transport, protocol, context, server_hostname=host), timeout
    )
    protocol.transport = transport
    await asyncio.wait_for(protocol.capability(), timeout)


async def _command(coro: object, timeout: float, what: str) -> Response:
    try:
        response: Response = await asyncio.wait_for(coro, timeout)  # type: ignore[arg-type]
    except TimeoutError:
        raise ImapError(f"{what}: timed out") from None
    return _ok(response, what)


async def _move(client: IMAP4, uid: str, folder: str, timeout: float) -> None:
    """Move the messages of a UID set ("7" or "7,9,12") to `folder`."""
    if client.has_capability("MOVE"):
        await _command(client.uid("move", uid, _quote(folder)), timeout, "UID MOVE")
        return
    await _command(client.uid("copy", uid, _quote(folder)), timeout, "UID COPY")
    await _command(client.uid("store", uid, "+FLAGS.SILENT", r"(\Deleted)"), timeout, "UID STORE")
    if client.has_capability("UIDPLUS"):
        await _command(client.uid("expunge", uid), timeout, "UID EXPUNGE")
    else:
        await _command(client.expunge(), timeout, "EXPUNGE")


def _message_bytes(response: Response) -> bytes | None:
    for line in response.lines:
        if isinstance(line, bytearray):
            return bytes(line)
    return None


async def poll_once(runtime: Runtime, client: IMAP4 | None = None) -> PollResult:
    """One pass over the mailbox: every message after the cursor, in UID order."""
    s = runtime.settings
    timeout = s.imap_timeout
    own = client is None
    client = client or await connect(runtime)
    result = PollResult()
    try:
        selected = await _command(client.select(_quote(s.imap_mailbox)), timeout, "SELECT")
        text = b" ".join(bytes(x) for x in selected.lines)
        validity_match = _UIDVALIDITY.search(text)
        validity = int(validity_match.group(1)) if validity_match else 0
        uidnext_match = _UIDNEXT.search(text)
        key = mailbox_key(s)
        async with runtime.sessions.begin() as session:
            cursor = await get_cursor(session, mailbox=key)
            if cursor is None or cursor.uidvalidity != validity:
                start_now = cursor is None and s.imap_first_start == "new" and uidnext_match
                last = int(uidnext_match.group(1)) - 1 if start_now and uidnext_match else 0
                if cursor is not None:
                    log.warning("UIDVALIDITY of %s changed: reading it again", s.imap_mailbox)
                await save_cursor(session, mailbox=key, uidvalidity=validity, last_uid=last)
            else:
                last = cursor.last_uid
        found = await _command(client.uid_search(f"UID {last + 1}:*"), timeout, "UID SEARCH")
        uids = sorted(
            int(u)
            for line in found.lines[:1]
            for u in bytes(line).split()
            if u.isdigit() and int(u) > last
        )
        while uids:
            del uids[: await _chunk(runtime, client, key, validity, uids, result)]
    finally:
        if own:
            try:
                await asyncio.wait_for(client.logout(), timeout)
            except Exception:  # noqa: S110 - the connection is being dropped anyway
                pass
    return result


async def _chunk(
    runtime: Runtime, client: IMAP4, key: str, validity: int, uids: list[int], result: PollResult
) -> int:
    """Fetch messages from `uids` while the chunk has room, handle them together (their
    replies share group commits), file each away, then advance the cursor past them.
    Returns how many UIDs were taken."""
    s = runtime.settings
    timeout = s.imap_timeout
    fetched: list[tuple[int, bytes | None]] = []
    size = 0
    for uid in uids[: s.imap_chunk]:
        got = await _command(client.uid("fetch", str(uid), "(BODY.PEEK[])"), timeout, "UID FETCH")
        raw = _message_bytes(got)
        fetched.append((uid, raw))
        size += len(raw or b"")
        if size >= CHUNK_BYTES:
            break
    result.fetched += len(fetched)
    # Every mail kept on disk first, in one worker thread (the event loop does not wait
    # for the fsyncs); then handled in fetch order, so one sender's mails keep theirs.
    digests = await asyncio.to_thread(store_blobs, s.data_dir, [raw for _, raw in fetched])
    folders = await asyncio.gather(
        *(
            _handle_one(runtime, key, validity, uid, raw, result, digest)
            for (uid, raw), digest in zip(fetched, digests, strict=True)
        )
    )
    for folder in dict.fromkeys(folders):
        chosen = ",".join(
            str(uid) for (uid, _), f in zip(fetched, folders, strict=True) if f == folder
        )
        await _move(client, chosen, folder, timeout)
    async with runtime.sessions.begin() as session:
        await save_cursor(session, mailbox=key, uidvalidity=validity, last_uid=fetched[-1][0])
    return len(fetched)


def _count_failed(result: PollResult) -> None:
    """A mail that goes to the failed folder, in the pass's result and the metrics."""
    result.failed += 1
    POLLER_MAIL.labels(outcome="failed").inc()
    ERRORS.labels(part="poller").inc()


async def _handle_one(
    runtime: Runtime,
    key: str,
    validity: int,
    uid: int,
    raw: bytes | None,
    result: PollResult,
    stored: str | None = None,
) -> str:
    """Handle one fetched message; the folder it goes to."""
    s = runtime.settings
    if raw is None:
        _count_failed(result)
        log.error("message uid %d of %s had no body", uid, key)
        return s.imap_failed_folder
    try:
        outcome = await handle_email(
            runtime, raw, fallback_id=f"{key}:{validity}:{uid}", stored=stored
        )
    except Exception as exc:
        _count_failed(result)
        log.exception("message uid %d of %s could not be handled", uid, key)
        await _record_failure(runtime, key, validity, uid, raw, exc)
        return s.imap_failed_folder
    result.duplicates += outcome.duplicate
    result.handled += not outcome.duplicate
    POLLER_MAIL.labels(outcome="repeat" if outcome.duplicate else "handled").inc()
    return s.imap_processed_folder


async def _record_failure(
    runtime: Runtime, key: str, validity: int, uid: int, raw: bytes, exc: Exception
) -> None:
    """Keep a failed message visible to operators, with the error, in the inbound table."""
    import hashlib

    digest = store_blob(runtime.settings.data_dir, "mail", raw)
    async with runtime.sessions.begin() as session:
        session.add(
            InboundMessage(
                channel="email",
                provider_id=f"failed:{key}:{validity}:{uid}:{hashlib.sha256(raw).hexdigest()[:16]}"[
                    :255
                ],
                from_address="",
                body="",
                raw={},
                raw_sha256=digest,
                outcome="failed",
                error=f"{type(exc).__name__}: {exc}"[:1000],
            )
        )


def mailbox_key(settings: Settings) -> str:
    """The mailbox's name in the cursor table and in its lock: `user@host/folder`."""
    return f"{settings.imap_user}@{settings.imap_host}/{settings.imap_mailbox}"


async def run_poller(runtime: Runtime, stop: asyncio.Event) -> None:
    """Poll until `stop` is set, while this process holds the mailbox's lock
    (`gateway.mailbox_lock`: one poller per mailbox across processes and hosts); stand by
    and try again every `poller_lock_retry` seconds while another process holds it."""
    s = runtime.settings
    key = mailbox_key(s)
    lock = mailbox_lock(runtime.engine, key, s.data_dir)
    if isinstance(lock, AdvisoryLock):
        lock.heartbeat = s.poller_lock_retry
    standing_by = False
    while not stop.is_set():
        try:
            held = await lock.acquire()
        except Exception as exc:
            log.warning("mailbox lock of %s: database unreachable (%s)", key, type(exc).__name__)
            held = False
        if not held:
            if not standing_by:
                log.info("mailbox %s is polled by another process; standing by", key)
                standing_by = True
            await _pause(stop, s.poller_lock_retry)
            continue
        standing_by = False
        log.info("polling mailbox %s (this process holds its lock)", key)
        halt = asyncio.Event()
        relay = asyncio.create_task(_set_on_either(stop, lock.lost, halt))
        POLLER_HOLDS.set(1)
        try:
            await _poll_while(runtime, halt)
        finally:
            POLLER_HOLDS.set(0)
            relay.cancel()
            await lock.release()
        if not stop.is_set():
            log.warning("stopped polling mailbox %s: its lock was lost", key)


async def _set_on_either(
    first: asyncio.Event, second: asyncio.Event, target: asyncio.Event
) -> None:
    waits = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        target.set()
    finally:
        for waiting in waits:
            waiting.cancel()


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


async def _poll_while(runtime: Runtime, halt: asyncio.Event) -> None:
    """Poll until `halt` is set: IDLE when offered, else every `imap_poll_seconds`;
    reconnect after any failure, backing off exponentially up to `imap_retry_max`."""
    s = runtime.settings
    failures = 0
    while not halt.is_set():
        try:
            client = await connect(runtime)
            if failures:
                log.info("mailbox reachable again after %d failed attempt(s)", failures)
            failures = 0
            try:
                while not halt.is_set():
                    await poll_once(runtime, client)
                    POLLER_LAST_SUCCESS.set_to_current_time()
                    await _wait_for_mail(client, halt, s.imap_poll_seconds, s.imap_idle)
            finally:
                try:
                    await asyncio.wait_for(client.logout(), s.imap_timeout)
                except Exception:  # noqa: S110 - dropping a broken connection
                    pass
        except Exception as exc:
            failures += 1
            ERRORS.labels(part="poller").inc()
            delay = min(s.imap_retry_max, 2.0 ** min(failures, 8)) * random.uniform(0.5, 1.0)
            log.warning("mailbox poll failed (%s); retrying in %.0f s", type(exc).__name__, delay)
            await _pause(halt, delay)


async def _wait_for_mail(client: IMAP4, stop: asyncio.Event, seconds: float, idle: bool) -> None:
    """Until new mail is announced (IDLE), `seconds` pass, or `stop` is set."""
    if not (idle and client.has_capability("IDLE")):
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except TimeoutError:
            pass
        return
    waiter = await client.idle_start(timeout=seconds)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set() and loop.time() < deadline:
            push = asyncio.ensure_future(client.wait_server_push(seconds))
            done, _ = await asyncio.wait(
                {push, stopping},
                timeout=deadline - loop.time(),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if push not in done:
                push.cancel()
                break
            lines = push.result()
            if lines == "stop_wait_server_push" or not isinstance(lines, list):
                break
            if any(b"EXISTS" in bytes(x) or b"RECENT" in bytes(x) for x in lines):
                break
    finally:
        stopping.cancel()
        client.idle_done()
        await asyncio.wait_for(waiter, 10)
