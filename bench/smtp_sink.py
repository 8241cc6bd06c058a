"""The email part's SMTP server: aiosmtpd in a process of its own, as a relay would be.

The tests' `tests.mailservers.SmtpCapture` runs in a thread of the test process and
parses every message it gets; in the bench that thread would share the gateway's
interpreter lock, and the gateway's delivery figure would carry the capture's work.
Here the server runs in a child process (like Dovecot on the IMAP side) and keeps the
envelope of each message (sender, recipients, size); the parent asks for them over a
pipe.
"""

from __future__ import annotations

import json
import subprocess
import sys
from types import TracebackType
from typing import Any

from tests.mailservers import free_port


class _Keep:
    def __init__(self) -> None:
        self.envelopes: list[tuple[str, list[str], int]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        size = len(envelope.original_content or envelope.content or b"")
        self.envelopes.append((envelope.mail_from or "", list(envelope.rcpt_tos), size))
        return "250 OK"


def serve(host: str, port: int) -> None:
    """The child: serve SMTP, answer one command a line on stdin with a JSON line."""
    from aiosmtpd.controller import Controller

    keep = _Keep()
    controller = Controller(keep, hostname=host, port=port, enable_SMTPUTF8=True)
    controller.start()
    print(json.dumps("ready"), flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "envelopes":
                print(json.dumps(list(keep.envelopes)), flush=True)
            elif command == "clear":
                keep.envelopes.clear()
                print(json.dumps("ok"), flush=True)
            else:
                break
    finally:
        controller.stop()


class SmtpSink:
    """`with SmtpSink() as smtp:` a plain-SMTP server on 127.0.0.1 in a child process."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        self.port = free_port()
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> SmtpSink:
        self._process = subprocess.Popen(  # noqa: S603 - our own module
            [sys.executable, "-m", "bench.smtp_sink", self.host, str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self._ask(None) != "ready":
            self._process.kill()
            raise RuntimeError("the SMTP sink did not start")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.communicate("stop\n", timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()

    def _ask(self, command: str | None) -> Any:
        process = self._process
        assert process is not None and process.stdin and process.stdout
        if command is not None:
            process.stdin.write(command + "\n")
            process.stdin.flush()
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the SMTP sink exited")
        return json.loads(line)

    def envelopes(self) -> list[tuple[str, list[str], int]]:
        """(sender, recipients, size) of every message since the last `clear`."""
        return [(sender, rcpts, size) for sender, rcpts, size in self._ask("envelopes")]

    def clear(self) -> None:
        self._ask("clear")


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
