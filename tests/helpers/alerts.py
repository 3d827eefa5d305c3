"""Stand-ins for where notifications go: a local SMTP server (aiosmtpd) and a webhook receiver
(``hostile.CaptureServer``), both on loopback, keeping what reaches them."""

from __future__ import annotations

import email
import email.policy
import json
from typing import Any

from aiosmtpd.controller import Controller

from helpers.harness import free_port
from helpers.hostile import CaptureServer
from helpers.waiting import wait_until


class AlertSink:
    def __init__(self) -> None:
        self.mails: list[dict[str, Any]] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                body = message.get_body(preferencelist=("plain",))
                html = message.get_body(preferencelist=("html",))
                sink.mails.append(
                    {
                        "to": list(envelope.rcpt_tos),
                        "subject": str(message["Subject"]),
                        "body": body.get_content() if body is not None else "",
                        "html": html.get_content() if html is not None else "",
                    }
                )
                return "250 OK"

        self.smtp_port = free_port()
        self.smtp = Controller(Handler(), hostname="127.0.0.1", port=self.smtp_port)
        self.smtp.start()
        self.webhook = CaptureServer()

    @property
    def mail_url(self) -> str:
        """Mail through the local relay (no login), as an Apprise URL."""
        return f"mailto://127.0.0.1:{self.smtp_port}?from=airflow@example.com&to=it-ops@example.com&mode=insecure"

    def webhook_url(self, path: str = "alerts") -> str:
        return f"json://{self.webhook.url.removeprefix('http://')}/{path}"

    @property
    def hooks(self) -> list[dict[str, Any]]:
        return [{"path": r["path"], **json.loads(r["body"] or b"{}")} for r in self.webhook.received]

    def clear(self) -> None:
        self.mails.clear()
        self.webhook.received.clear()

    def wait_for(self, mails: int = 0, hooks: int = 0, timeout: float = 30) -> None:
        wait_until(
            f"{mails} mail(s) and {hooks} webhook call(s)",
            lambda: len(self.mails) >= mails and len(self.hooks) >= hooks,
            timeout,
            every=0.1,
            seen=lambda: f"mails {self.mails}, webhook calls {self.hooks}",
        )

    def everything(self) -> str:
        return json.dumps([self.mails, self.hooks])

    def stop(self) -> None:
        self.smtp.stop()
        self.webhook.stop()
