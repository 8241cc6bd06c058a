"""Real mail servers for tests: a throw-away Dovecot (IMAP) and an in-process SMTP capture.

`Dovecot` runs `/usr/sbin/dovecot -F -c FILE` with a complete config of its own in a
temporary directory (nothing is read from /etc/dovecot): plain IMAP on a free loopback
port, one passwd-file user whose mail (maildir, owned by the `dovecot` user) lives in the
same directory, and the folders INBOX, Processed and Failed. Run as root, as DESIGN.md
"Real parts in tests" describes; as another user everything runs as that user instead.
With `tls=True` it also gets a throw-away self-signed certificate for localhost/127.0.0.1
(made with the `openssl` CLI): the plain port then offers STARTTLS, and implicit TLS
(IMAPS) listens on a second free port, `tls_port`; `cert_path` is the CA file to trust.

`SmtpCapture` is an `aiosmtpd` server on a free loopback port that keeps every message
it receives, and answers `451 4.3.0 try later` to DATA while `refuse` is set.

The fixtures `dovecot`, `dovecot_tls` and `smtp_capture` (bottom of this file) give a fresh
server per test; tests/conftest.py imports them.
"""

from __future__ import annotations

import asyncio
import atexit
import email
import email.policy
import grp
import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from email.message import EmailMessage
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from tests.support import missing_service

DOVECOT_BINARY = Path("/usr/sbin/dovecot")
OPENSSL_BINARY = Path("/usr/bin/openssl")
START_TIMEOUT = 15.0
IMAP_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tmp_root() -> str:
    """A short temp directory every user can traverse (the login and mail processes
    run as other users; socket paths under base_dir must stay short)."""
    root = tempfile.gettempdir()
    path = Path(root)
    traversable = all(p.stat().st_mode & 0o001 for p in [path, *path.parents])
    return root if traversable and len(root) <= 40 else "/tmp"


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _live_members(pgid: int) -> list[int]:
    """Processes of process group `pgid` that are still running (zombies excluded)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            pids.append(int(stat.parent.name))
    return pids


_unclosed: set[Dovecot] = set()  # stopped and deleted at exit if a test did not


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_unclosed):
        with suppress(Exception):
            server.close()


class Dovecot:
    """A throw-away Dovecot IMAP server on 127.0.0.1 (plain IMAP; with `tls=True` also
    STARTTLS on `port` and implicit TLS on `tls_port`, certificate `cert_path`).

    `start()` (about 0.05 s) and `stop()` (0.01-0.15 s, now and then 1 s) block; from
    async code under load use `await asyncio.to_thread(server.restart)`. The mail keeps across
    `stop()`/`start()` and the ports stay the same. `close()` stops and deletes it all.
    The async helpers open their own IMAP connection (imaplib in a thread) each call.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        user: str = "citizen-desk@city.example",
        password: str = "desk-password-0123",
        *,
        tls: bool = False,
    ) -> None:
        self.user = user
        self.password = password
        self.tls = tls
        if os.geteuid() == 0:
            self._login_user, self._internal_user = "dovenull", "dovecot"
        else:
            me = pwd.getpwuid(os.geteuid()).pw_name
            self._login_user = self._internal_user = me
        owner = pwd.getpwnam(self._internal_user)  # the mail user: uid not 0
        self.uid, self.gid = owner.pw_uid, owner.pw_gid
        self.root = Path(tempfile.mkdtemp(prefix="citygate-dovecot-", dir=_tmp_root()))
        self.root.chmod(0o755)
        self.config_path = self.root / "dovecot.conf"
        self.log_path = self.root / "dovecot.log"
        self.stderr_path = self.root / "dovecot.stderr"
        self.home = self.root / "home" / user
        self.maildir = self.home / "Maildir"
        self.port = 0
        self.tls_port = 0  # implicit TLS (IMAPS); 0 without `tls`
        self.cert_path = self.root / "tls-cert.pem"  # self-signed: also the CA file to trust
        self.key_path = self.root / "tls-key.pem"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_seconds = 0.0  # how long the last start() took
        _unclosed.add(self)
        self._prepare()

    # ----------------------------------------------------------------- files

    def _prepare(self) -> None:
        for sub in ("run", "state", "home"):
            (self.root / sub).mkdir(mode=0o755)
            (self.root / sub).chmod(0o755)
        self.home.mkdir(mode=0o700)
        for path in (self.root / "home", self.home):
            os.chown(path, self.uid, self.gid)
        passwd = self.root / "passwd"
        passwd.write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        passwd.chmod(0o644)
        if self.tls:
            self._make_certificate()

    def _make_certificate(self) -> None:
        """A self-signed certificate (no CA of its own) for localhost and 127.0.0.1."""
        done = subprocess.run(
            [
                str(OPENSSL_BINARY),
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout",
                str(self.key_path),
                "-out",
                str(self.cert_path),
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"openssl req failed:\n{done.stderr.decode(errors='replace')}")
        # Dovecot's config process (root, or the current user rootless) reads both files.
        self.key_path.chmod(0o600)
        self.cert_path.chmod(0o644)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    def _write_config(self) -> None:
        root = self.root
        rootless = ""
        if os.geteuid() != 0:
            rootless = _ROOTLESS.format(group=grp.getgrgid(self.gid).gr_name)
        ssl_settings, imaps = "ssl = no", _IMAPS_OFF
        if self.tls:
            ssl_settings = _SSL_ON.format(cert=self.cert_path, key=self.key_path)
            imaps = _IMAPS_ON.format(port=self.tls_port)
        self.config_path.write_text(
            _CONFIG.format(
                root=root,
                name=f"citygate-test-{root.name}",
                login_user=self._login_user,
                internal_user=self._internal_user,
                uid=self.uid,
                gid=self.gid,
                port=self.port,
                ssl_settings=ssl_settings,
                imaps=imaps,
                rootless=rootless,
            )
        )

    def _log_marks(self) -> dict[Path, int]:
        return {
            path: path.stat().st_size if path.exists() else 0
            for path in (self.log_path, self.stderr_path)
        }

    def _log_since(self, marks: dict[Path, int]) -> str:
        text = ""
        for path, offset in marks.items():
            with suppress(OSError), path.open("rb") as f:
                f.seek(offset)
                text += f.read().decode(errors="replace")
        return text

    def log_tail(self, lines: int = 40) -> str:
        text = ""
        for path in (self.log_path, self.stderr_path):
            with suppress(OSError):
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    # ------------------------------------------------------------- lifecycle

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        keep_port = self.port != 0
        attempts = 3
        for attempt in range(attempts):
            if not keep_port:
                self.port = free_port()
                if self.tls:
                    self.tls_port = free_port()
                    while self.tls_port == self.port:
                        self.tls_port = free_port()
            try:
                self._start_once()
                return
            except _PortTaken:
                if attempt == attempts - 1:
                    raise RuntimeError(f"dovecot: port busy\n{self.log_tail()}") from None
                time.sleep(0.2)

    def _start_once(self) -> None:
        self._write_config()
        # None of ours runs now; a stale pid file (after a kill) could name a live pid.
        (self.root / "run" / "master.pid").unlink(missing_ok=True)
        marks = self._log_marks()
        started = time.monotonic()
        with self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(
                [str(DOVECOT_BINARY), "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,
            )
        deadline = started + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                self.proc = None
                if "in use" in self._log_since(marks):
                    raise _PortTaken
                raise RuntimeError(f"dovecot exited while starting:\n{self.log_tail()}")
            if self._login_works():
                self.start_seconds = time.monotonic() - started
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"dovecot did not accept IMAP logins on {self.host}:{self.port} "
                    f"within {START_TIMEOUT:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.02)

    def _login_works(self) -> bool:
        if not self._login_works_on(self.port, tls=False):
            return False
        return not self.tls or self._login_works_on(self.tls_port, tls=True)

    def _login_works_on(self, port: int, *, tls: bool) -> bool:
        try:
            if tls:
                conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    self.host, port, ssl_context=self.ssl_context(), timeout=1.0
                )
            else:
                conn = imaplib.IMAP4(self.host, port, timeout=1.0)
        except OSError:  # ssl.SSLError included
            return False
        try:
            conn.login(self.user, self.password)
            conn.logout()
            return True
        except (OSError, imaplib.IMAP4.error):
            return False
        finally:
            with suppress(Exception):
                conn.shutdown()

    def stop(self) -> None:
        """Stop every Dovecot process (SIGTERM to its process group: each exits cleanly
        at once, where SIGTERM to the master alone takes about a second)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        # Children still alive (not zombies) keep the listening socket: wait, then kill.
        deadline = time.monotonic() + 5
        while _live_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        if _live_members(proc.pid):
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(0.1)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        _unclosed.discard(self)

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------- IMAP access

    @contextmanager
    def connect(self) -> Iterator[imaplib.IMAP4]:
        """A logged-in imaplib connection (blocking; for use in threads or sync tests)."""
        conn = imaplib.IMAP4(self.host, self.port, timeout=IMAP_TIMEOUT)
        try:
            conn.login(self.user, self.password)
            yield conn
            with suppress(Exception):
                conn.logout()
        finally:
            with suppress(Exception):
                conn.shutdown()

    @staticmethod
    def _ok(result: tuple[str, list[Any]], what: str) -> list[Any]:
        typ, data = result
        if typ != "OK":
            raise RuntimeError(f"IMAP {what} failed: {typ} {data!r}")
        return data

    def _select(self, conn: imaplib.IMAP4, mailbox: str) -> None:
        self._ok(conn.select(_quote(mailbox), readonly=True), f"EXAMINE {mailbox}")

    def append_sync(self, raw: bytes, mailbox: str = "INBOX", flags: str = "") -> int:
        with self.connect() as conn:
            data = self._ok(
                conn.append(_quote(mailbox), f"({flags})" if flags else None, None, raw),
                f"APPEND {mailbox}",
            )
        match = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
        return int(match.group(1)) if match else 0

    def uids_sync(self, mailbox: str = "INBOX") -> list[int]:
        with self.connect() as conn:
            self._select(conn, mailbox)
            data = self._ok(conn.uid("SEARCH", "ALL"), "UID SEARCH")
        return sorted(int(n) for n in (data[0] or b"").split())

    def _fetch(self, mailbox: str, items: str) -> list[tuple[bytes, bytes | None]]:
        with self.connect() as conn:
            self._select(conn, mailbox)
            if not self._ok(conn.uid("SEARCH", "ALL"), "UID SEARCH")[0]:
                return []
            data = self._ok(conn.uid("FETCH", "1:*", f"(UID {items})"), "UID FETCH")
        out: list[tuple[int, bytes, bytes | None]] = []
        for item in data:
            if isinstance(item, tuple):
                meta, body = item[0], item[1]
            elif isinstance(item, bytes) and b"UID" in item:
                meta, body = item, None
            else:
                continue
            match = re.search(rb"UID (\d+)", meta)
            if match:
                out.append((int(match.group(1)), meta, body))
        return [(meta, body) for _, meta, body in sorted(out, key=lambda t: t[0])]

    def fetch_all_sync(self, mailbox: str = "INBOX") -> list[bytes]:
        return [body or b"" for _, body in self._fetch(mailbox, "BODY.PEEK[]")]

    def flags_sync(self, mailbox: str = "INBOX") -> dict[int, set[str]]:
        result: dict[int, set[str]] = {}
        for meta, _ in self._fetch(mailbox, "FLAGS"):
            uid = re.search(rb"UID (\d+)", meta)
            flags = re.search(rb"FLAGS \(([^)]*)\)", meta)
            if uid:
                names = flags.group(1).decode().split() if flags else []
                result[int(uid.group(1))] = set(names) - {"\\Recent"}
        return result

    def status_sync(self, mailbox: str, item: str) -> int:
        with self.connect() as conn:
            data = self._ok(conn.status(_quote(mailbox), f"({item})"), f"STATUS {mailbox}")
        match = re.search(rf"{item} (\d+)".encode(), data[0] or b"")
        if not match:
            raise RuntimeError(f"IMAP STATUS {mailbox} gave no {item}: {data!r}")
        return int(match.group(1))

    def mailboxes_sync(self) -> list[str]:
        with self.connect() as conn:
            data = self._ok(conn.list(), "LIST")
        names = []
        for line in data:
            match = re.search(rb'\) "[^"]*" (.+)$', line or b"")
            if match:
                names.append(match.group(1).decode().strip('"'))
        return names

    def recreate_inbox_sync(self) -> int:
        was_running = self.running
        self.start()
        old = self.status_sync("INBOX", "UIDVALIDITY")
        self.stop()
        # INBOX is the maildir root; the folders are `.Name` subdirectories. Keeping
        # dovecot-uidvalidity makes Dovecot hand out the next value, never the old one.
        for sub in ("cur", "new", "tmp"):
            shutil.rmtree(self.maildir / sub, ignore_errors=True)
        for path in self.maildir.glob("dovecot*"):
            if path.is_file() and not path.name.startswith("dovecot-uidvalidity"):
                path.unlink()
        self.start()
        new = self.status_sync("INBOX", "UIDVALIDITY")
        if not was_running:
            self.stop()
        if new == old:
            raise RuntimeError(f"INBOX UIDVALIDITY did not change ({old})")
        return new

    async def append(self, raw: bytes, mailbox: str = "INBOX", flags: str = "") -> int:
        """APPEND one message (bare LF becomes CRLF); returns its UID."""
        return await asyncio.to_thread(self.append_sync, raw, mailbox, flags)

    async def uids(self, mailbox: str = "INBOX") -> list[int]:
        return await asyncio.to_thread(self.uids_sync, mailbox)

    async def fetch_all(self, mailbox: str = "INBOX") -> list[bytes]:
        """Every message of `mailbox` (BODY.PEEK[], CRLF line ends), in UID order."""
        return await asyncio.to_thread(self.fetch_all_sync, mailbox)

    async def flags(self, mailbox: str = "INBOX") -> dict[int, set[str]]:
        """UID -> flags without \\Recent, e.g. {1: {"\\Seen"}}."""
        return await asyncio.to_thread(self.flags_sync, mailbox)

    async def count(self, mailbox: str = "INBOX") -> int:
        return await asyncio.to_thread(self.status_sync, mailbox, "MESSAGES")

    async def uidvalidity(self, mailbox: str = "INBOX") -> int:
        return await asyncio.to_thread(self.status_sync, mailbox, "UIDVALIDITY")

    async def mailboxes(self) -> list[str]:
        return await asyncio.to_thread(self.mailboxes_sync)

    async def recreate_inbox(self) -> int:
        """Empty INBOX and give it a new UIDVALIDITY (stops and restarts the server,
        which drops open connections); returns the new UIDVALIDITY."""
        return await asyncio.to_thread(self.recreate_inbox_sync)


class _PortTaken(Exception):
    pass


_CONFIG = """\
# Written by tests/mailservers.py: a complete config, nothing from /etc/dovecot.
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
instance_name = {name}
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = 1
first_valid_gid = 1
{ssl_settings}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
log_path = {root}/dovecot.log
mail_location = maildir:~/Maildir
mailbox_idle_check_interval = 1 secs
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Processed {{
    auto = subscribe
  }}
  mailbox Failed {{
    auto = subscribe
  }}
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
# No growing delay for logins after a failed one (the wrong-password tests).
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
{imaps}
}}
{rootless}"""

_SSL_ON = """\
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}"""

_IMAPS_OFF = """\
  inet_listener imaps {
    port = 0
  }"""

_IMAPS_ON = """\
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}"""

# Not root: no chroot, no privilege changes; every process runs as the current user.
_ROOTLESS = """\
default_internal_group = {group}
service imap-login {{
  chroot =
}}
service auth {{
  user = $default_internal_user
}}
service auth-worker {{
  user = $default_internal_user
}}
service anvil {{
  chroot =
}}
"""


# ---------------------------------------------------------------------- SMTP


class Captured(NamedTuple):
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage


class _Handler:
    def __init__(self, capture: SmtpCapture) -> None:
        self.capture = capture

    async def handle_MAIL(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.capture.user is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.capture.refuse:
            self.capture.refused += 1
            return "451 4.3.0 try later"
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        # Parsed from LF-only lines (what email.policy.default expects); `raw` stays as sent.
        message = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.capture.messages.append(
            Captured(envelope.mail_from or "", list(envelope.rcpt_tos), raw, message)
        )
        self.capture.peers.add(session.peer)
        return "250 OK"


class SmtpCapture:
    """An aiosmtpd server on 127.0.0.1:<free port> (own thread) keeping what it gets.

    Plain SMTP (no TLS, so use security "none"). With `user`/`password`, AUTH PLAIN/LOGIN
    is offered over plain text and required.
    """

    host = "127.0.0.1"

    def __init__(self, user: str | None = None, password: str | None = None) -> None:
        self.user = user
        self.password = password
        self.port = 0
        self.messages: list[Captured] = []
        self.refuse = False
        self.refused = 0  # DATA commands answered 451
        self.peers: set[Any] = set()  # (host, port) of each connection a message came over
        self._controller: Controller | None = None

    def _authenticate(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.user
            and data.password.decode() == self.password
        )
        return AuthResult(success=ok)

    def start(self) -> None:
        if self._controller is not None:
            return
        kwargs: dict[str, Any] = {}
        if self.user is not None:
            # Required by handle_MAIL: aiosmtpd's auth_required warns without TLS.
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        for attempt in range(3):
            self.port = free_port()
            controller = Controller(
                _Handler(self),
                hostname=self.host,
                port=self.port,
                enable_SMTPUTF8=True,
                ready_timeout=10,
                **kwargs,
            )
            try:
                controller.start()
            except Exception:
                if attempt == 2:
                    raise
                continue
            self._controller = controller
            return

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    async def wait_for(self, n: int, timeout: float = 10) -> list[Captured]:
        """Wait until at least `n` messages arrived; returns all received so far."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"SMTP capture: {len(self.messages)} of {n} messages after {timeout} s"
                )
            await asyncio.sleep(0.02)
        return list(self.messages)

    def __enter__(self) -> SmtpCapture:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """A fresh, running Dovecot per test (starts in about 0.1 s)."""
    yield from _dovecot_server(tls=False)


def _dovecot_server(*, tls: bool) -> Iterator[Dovecot]:
    if not DOVECOT_BINARY.exists():
        missing_service("dovecot-imapd not installed (/usr/sbin/dovecot)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("dovecot")
            pwd.getpwnam("dovenull")
        except KeyError:
            missing_service("users dovecot/dovenull missing (dovecot-core not set up)")
    server = Dovecot(tls=tls)
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def dovecot_tls() -> Iterator[Dovecot]:
    """Like `dovecot`, with TLS: STARTTLS on `port`, implicit TLS on `tls_port`, the
    self-signed certificate (also the CA file to trust) at `cert_path`."""
    if not OPENSSL_BINARY.exists():
        missing_service(f"openssl CLI not installed ({OPENSSL_BINARY})")
    yield from _dovecot_server(tls=True)


@pytest.fixture
def smtp_capture() -> Iterator[SmtpCapture]:
    """A fresh SMTP capture server per test."""
    capture = SmtpCapture()
    capture.start()
    try:
        yield capture
    finally:
        capture.stop()
