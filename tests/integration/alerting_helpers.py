"""Helpers shared by test_alerting*.py and test_notify*.py: a real SMTP server (Debian's
python3-aiosmtpd, Mailbox handler writing a maildir, envelope in X-RcptTo), and small API
wrappers. Stdlib + aiosmtpd only."""

import asyncio
import email
import email.policy
import mailbox
import os
import socket
import ssl
import subprocess
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

from conftest import free_port


class SlowMailbox(Mailbox):
    """A Mailbox that can hold its "250 OK" after storing a message (crash tests)."""

    def __init__(self, path):
        super().__init__(path)
        self.delay = 0.0
        self.stored = threading.Event()
        self.tls = []  # per stored mail: was the session encrypted?

    async def handle_DATA(self, server, session, envelope):
        # STARTTLS sets session.ssl; implicit TLS shows on the transport.
        self.tls.append(session.ssl is not None or
                        server.transport.get_extra_info("ssl_object") is not None)
        r = await super().handle_DATA(server, session, envelope)
        self.stored.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        return r


def self_signed_cert(directory):
    """A key and a self-signed certificate for 127.0.0.1 (openssl), as (cert, key) paths;
    the certificate is also the CA file a client trusts."""
    cert, key = os.path.join(directory, "smtp-cert.pem"), os.path.join(directory, "smtp-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


class Smtp:
    """An SMTP server on a fixed port that can be started and stopped (SMTP down tests).
    tls: None (plain), "starttls" (STARTTLS offered and required before MAIL) or "smtps"
    (TLS from the first byte); the certificate is self-signed, its file in self.cert."""

    def __init__(self, tmp_path, tls=None):
        self.port = free_port()
        self.dir = str(tmp_path / "maildir")  # created (with new/cur/tmp) by Mailbox
        self.handler = SlowMailbox(self.dir)
        self.controller = None
        self.tls = tls
        self.cert = None
        if tls:
            self.cert, key = self_signed_cert(str(tmp_path))
            self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.context.load_cert_chain(self.cert, key)

    @property
    def url(self):
        return f"{'smtps' if self.tls == 'smtps' else 'smtp'}://127.0.0.1:{self.port}"

    def start(self):
        if self.controller is None:
            kw = {}
            if self.tls == "starttls":
                kw = {"tls_context": self.context, "require_starttls": True}
            elif self.tls == "smtps":
                kw = {"ssl_context": self.context}
            self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                         **kw)
            self.controller.start()
        return self

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def messages(self):
        """Every stored mail, parsed with the modern email policy, in arrival order."""
        if not os.path.isdir(os.path.join(self.dir, "new")):
            return []
        box = mailbox.Maildir(self.dir, factory=None, create=False)
        out = []
        for key in box.keys():
            path = os.path.join(self.dir, "new", key)
            if not os.path.exists(path):
                path = os.path.join(self.dir, "cur", key)
            with open(path, "rb") as f:
                msg = email.message_from_binary_file(f, policy=email.policy.default)
            out.append((os.path.getmtime(path), msg))
        out.sort(key=lambda x: x[0])
        return [m for _, m in out]


def dead_port():
    """A port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def req(server, key, method, path, body=None, expect=None):
    status, headers, resp = server.request(method, path, body, token=key)
    if expect is not None:
        assert status == expect, (method, path, status, resp)
    return resp if expect is not None else (status, headers, resp)


def report(server, key, alerts, expect=202):
    body = {"alerts": alerts} if isinstance(alerts, list) else alerts
    return req(server, key, "POST", "/v1/alerts", body, expect=expect)


def alert(event="order.import_failed", connection="shopify-main", entity_id="ORD-1",
          message="SKU ABC-1 not found", **kw):
    a = {"event": event, "message": message}
    if connection is not None:
        a["connection"] = connection
    if entity_id is not None:
        a["entity_id"] = entity_id
    a.update(kw)
    return a


def policy(server, key, events, expect=201, **kw):
    body = {"name": kw.pop("name", "Policy"), "monitored_events": events}
    body.update(kw)
    return req(server, key, "POST", "/v1/alert-policies", body, expect=expect)


def channel(server, key, addresses=("ops@acme.example",), batching="immediate", expect=201,
            name="Ops team"):
    return req(server, key, "POST", "/v1/notification-channels",
               {"name": name, "type": "email", "addresses": list(addresses),
                "batching": batching}, expect=expect)


def issues(server, key, query=""):
    return req(server, key, "GET", f"/v1/issues{('?' + query) if query else ''}",
               expect=200)["data"]


def timeline(server, key, issue_id):
    return req(server, key, "GET", f"/v1/issues/{issue_id}/timeline", expect=200)["data"]
