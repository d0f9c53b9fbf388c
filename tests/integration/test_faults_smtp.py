"""Fault injection, SMTP (issue 17 §3): a real aiosmtpd server with a handler that answers
DATA with 451 (temporary) or 554 (permanent), refuses recipients with 550, drops the
connection in the middle of DATA, or takes 3 s per message; SMTP down altogether is
test_notify.py's test_smtp_down_retries_then_delivers. While the fault lasts, alerts keep
opening issues (each one's notification is an acknowledged item) and the API keeps
answering; once it clears, every notification is sent and every mail arrives. Both
databases."""

import asyncio
import time

import pytest

from alerting_helpers import SlowMailbox, Smtp, alert, channel, policy, report, req
from conftest import ALL_PERMS, make_key, make_tenant, wait_for

FROM = "Sluice <alerts@sluice.acme.example>"


class FaultyMailbox(SlowMailbox):
    """A Mailbox that fails on demand: mode None (store), "451", "554", "rcpt550", "drop"
    (close the connection instead of answering DATA) or "slow" (store after 3 s)."""

    def __init__(self, path):
        super().__init__(path)
        self.mode = None
        self.failed = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.mode == "rcpt550":
            self.failed += 1
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.mode == "451":
            self.failed += 1
            return "451 4.3.0 Mailbox temporarily unavailable, try again later"
        if self.mode == "554":
            self.failed += 1
            return "554 5.3.0 Transaction failed"
        if self.mode == "drop":
            self.failed += 1
            server.transport.close()
            return "421 closing"
        if self.mode == "slow":
            await asyncio.sleep(3)
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.parametrize("mode", ["451", "554", "rcpt550", "drop", "slow"])
def test_smtp_fault_then_every_notification_sent(start_server, db, tmp_path, mode):
    smtp = Smtp(tmp_path)
    smtp.handler = FaultyMailbox(smtp.dir)
    smtp.handler.mode = mode
    smtp.start()
    try:
        srv = start_server(db=db, args=["--time-scale", "3600", "--smtp-url", smtp.url,
                                        "--smtp-from", FROM, "--lease", "5s"])
        make_tenant(srv, "acme", "Acme")
        key = make_key(srv, "acme", ALL_PERMS)
        ch = channel(srv, key)
        policy(srv, key, [{"event": "order.*"}], channel_ids=[ch["id"]],
               auto_close_after=None)
        report(srv, key, alert(connection="shop-0"))
        if mode == "slow":
            wait_for(lambda: smtp.handler.stored.is_set() or None, 30, what="the first mail")
        else:
            wait_for(lambda: smtp.handler.failed >= 2, 30, what=f"two attempts failing {mode}")
        # The API answers while mail fails or crawls; more issues open meanwhile.
        for i in range(1, 4):
            t0 = time.monotonic()
            report(srv, key, alert(connection=f"shop-{i}"))
            assert time.monotonic() - t0 < 2, "reporting waits on SMTP"
        smtp.handler.mode = None
        issues = req(srv, key, "GET", "/v1/issues?limit=100", expect=200)["data"]
        assert len(issues) == 4

        def all_sent():
            n = req(srv, key, "GET", "/v1/notifications?limit=100", expect=200)["data"]
            return len(n) == 4 and all(x["status"] == "sent" for x in n) and n
        sent = wait_for(all_sent, 60, 0.1, what="every notification sent")
        if mode != "slow":
            assert any(x["attempts"] >= 2 for x in sent), sent
        msgs = wait_for(lambda: (lambda m: m if len(m) >= 4 else None)(smtp.messages()), 30,
                        what="four mails")
        mailed = {m["Message-ID"][1:].split("@", 1)[0] for m in msgs}
        assert {x["id"] for x in sent} <= mailed, (mailed, sent)
        assert srv.running()
    finally:
        smtp.stop()
