"""A real SMTP server for the tests (aiosmtpd, in a thread of the test process).

It keeps every message it accepts, and on demand refuses the next ones, or stalls a sender (or
every sender) in the middle of its conversation, so that a test can kill the sender there.
"""

import asyncio
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from devtools.embedded_redis import free_port


class MailCatcher:
    def __init__(self):
        self.port = free_port()
        self.url = f"smtp://127.0.0.1:{self.port}?tls=off"
        self.messages: list[EmailMessage] = []
        self.refusals = 0  # answer "451 try again later" to this many messages
        self.holding = False  # while True, hold every sender after it names its recipient
        self.held = 0  # senders held now (one that hangs up is no longer)
        self.stalled = threading.Event()  # set once a sender is held at RCPT
        self._stall = False
        self._go_on = threading.Event()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    def start(self) -> "MailCatcher":
        self._controller.start()
        return self

    def stop(self) -> None:
        self._go_on.set()
        self._controller.stop()

    def stall_next_sender(self) -> None:
        """Hold the next sender after it names its recipient, until ``stop()``."""
        self._stall = True

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self._stall:
            self._stall = False
            self.stalled.set()
            while not self._go_on.is_set():
                await asyncio.sleep(0.05)
        if self.holding:
            self.held += 1
            try:  # aiosmtpd cancels this when the sender hangs up
                while self.holding and not self._go_on.is_set():
                    await asyncio.sleep(0.05)
            finally:
                self.held -= 1
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.refusals:
            self.refusals -= 1
            return "451 4.3.0 Try again later"
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"
