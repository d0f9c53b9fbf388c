"""Notification channels and the notifier against a real SMTP server (aiosmtpd's Mailbox,
maildir on disk): immediate mails, window digests, empty windows, SMTP down with retries
on the timeline, a crash between send and commit, and the mail's MIME structure and
headers. --time-scale 3600 makes a 1h window one second. Both databases."""

import re
import time

import pytest

from alerting_helpers import Smtp, alert, channel, issues, policy, report, req, timeline
from conftest import ALL_PERMS, assert_problem, make_key, make_tenant, wait_for

PUBLIC = "https://sluice.acme.example"
FROM = "Sluice <alerts@sluice.acme.example>"


@pytest.fixture
def smtp(tmp_path):
    s = Smtp(tmp_path)
    yield s
    s.stop()


def start(start_server, db, smtp, extra=()):
    srv = start_server(db=db, args=["--time-scale", "3600", "--smtp-url", smtp.url,
                                    "--smtp-from", FROM, "--public-url", PUBLIC,
                                    "--lease", "2s", *extra])
    make_tenant(srv, "acme", "Acme")
    return srv, make_key(srv, "acme", ALL_PERMS, name="ops")


def check_mail(msg, rcpt):
    """Structure and headers every Sluice mail has. Each recipient gets a mail of their own
    (its unsubscribe link names them)."""
    assert msg["From"] == FROM
    assert msg["To"] == rcpt
    assert msg["X-RcptTo"] == rcpt  # the SMTP envelope
    assert msg["Date"] and msg["Date"].datetime.tzinfo is not None
    assert re.fullmatch(r"<ntf_[0-9A-Z]{26}@sluice\.acme\.example>", msg["Message-ID"])
    assert msg["Auto-Submitted"] == "auto-generated"
    assert re.fullmatch(rf"<{re.escape(PUBLIC)}/unsubscribe/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+>",
                        msg["List-Unsubscribe"])
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"  # RFC 8058
    assert msg.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    return text, html


def test_immediate_mail_open_and_close(start_server, db, smtp):
    smtp.start()
    srv, key = start(start_server, db, smtp)
    assert srv.request("GET", "/readyz")[2]["checks"]["smtp"] == "ok"
    ch = channel(srv, key, ["ops@acme.example", "oncall@acme.example"])
    policy(srv, key, [{"event": "order.import_failed"}], channel_ids=[ch["id"]],
           notify_on=["opened", "closed"], auto_close_after=None)
    report(srv, key, alert())
    (iss,) = issues(srv, key)
    opened = wait_for(lambda: (lambda m: m if len(m) >= 2 else None)(smtp.messages()), 10,
                      what="the opened mail, one per address")
    assert sorted(m["To"] for m in opened) == ["oncall@acme.example", "ops@acme.example"]
    assert opened[0]["Message-ID"] == opened[1]["Message-ID"]  # one message, two copies
    assert opened[0]["List-Unsubscribe"] != opened[1]["List-Unsubscribe"]
    for msg in opened:
        text, html = check_mail(msg, msg["To"])
        assert msg["Subject"] == "[Sluice] 1 opened — Acme"
        assert msg["In-Reply-To"] == f"<{iss['id']}@sluice.acme.example>"
        assert msg["References"] == f"<{iss['id']}@sluice.acme.example>"
        assert "order.import_failed on shopify-main" in text
        assert f"{PUBLIC}/#/issues/{iss['id']}" in text
        assert f'href="{PUBLIC}/#/issues/{iss["id"]}"' in html
        unsub = msg["List-Unsubscribe"][1:-1]
        assert f"Stop these mails: {unsub}" in text and f'href="{unsub}"' in html
    msg = opened[0]
    # the notification row and the timeline say it was sent
    ntf = wait_for(lambda: [n for n in req(srv, key, "GET", "/v1/notifications", expect=200)["data"]
                            if n["status"] == "sent"] or None, 10, what="sent status")
    assert ntf[0]["issue_ids"] == [iss["id"]] and ntf[0]["attempts"] == 1
    assert ntf[0]["subject"] == msg["Subject"] and ntf[0]["channel_id"] == ch["id"]
    assert sorted(ntf[0]["recipients"]) == ["oncall@acme.example", "ops@acme.example"]
    assert "notified" in [e["kind"] for e in timeline(srv, key, iss["id"])]
    # more alerts on the same issue send nothing; closing sends "closed" in the same thread
    report(srv, key, [alert(), alert()])
    req(srv, key, "POST", f"/v1/issues/{iss['id']}/close", expect=200)
    msgs = wait_for(lambda: (lambda m: m if len(m) >= 4 else None)(smtp.messages()), 10,
                    what="the closed mail")
    assert len(msgs) == 4
    for closed in msgs[2:]:
        assert closed["Subject"] == "[Sluice] 1 closed — Acme"
        assert closed["In-Reply-To"] == msg["In-Reply-To"]
        assert closed["Message-ID"] != msg["Message-ID"]
    # an alert that matches no policy notifies no one
    report(srv, key, alert(event="shipment.export_failed"))
    time.sleep(1.0)
    assert len(smtp.messages()) == 4
    status, _, text = srv.request("GET", "/metrics")
    assert 'sluice_notifications_total{outcome="sent"} 2' in text


def test_batched_digest_one_mail_per_window(start_server, db, smtp):
    smtp.start()
    srv, key = start(start_server, db, smtp)
    ch = channel(srv, key, batching="1h")  # one second at --time-scale 3600
    policy(srv, key, [{"event": "order.*"}], channel_ids=[ch["id"]], name="orders")
    policy(srv, key, [{"event": "shipment.*"}], channel_ids=[ch["id"]], name="shipments")
    sent = [alert(connection=f"shop-{i}") for i in range(25)] + \
        [alert(event="shipment.tracking_failed", connection="ups")]
    report(srv, key, sent)  # one transaction: one window
    assert len(issues(srv, key, "limit=1000")) == 26
    (msg,) = wait_for(lambda: smtp.messages() or None, 10, what="the digest")
    text, html = check_mail(msg, "ops@acme.example")
    assert msg["Subject"] == "[Sluice] 26 opened — Acme"
    refs = msg["References"].split()
    assert len(refs) == 26 and all(re.fullmatch(r"<iss_[0-9A-Z]{26}@sluice\.acme\.example>", r)
                                   for r in refs)
    assert msg["In-Reply-To"] is None
    assert "…and 6 more" in text and "…and 6 more" in html  # long lists are capped
    # the window's digest was sent once; the next windows are empty and send nothing
    time.sleep(3.0)
    assert len(smtp.messages()) == 1
    ntfs = req(srv, key, "GET", f"/v1/notifications?channel_id={ch['id']}", expect=200)["data"]
    assert len(ntfs) == 1 and ntfs[0]["status"] == "sent" and len(ntfs[0]["issue_ids"]) == 26
    # a later window with a close and an open: one digest with both counts
    first = issues(srv, key, "limit=1")[0]
    req(srv, key, "PATCH", "/v1/alert-policies/" + first["policy_id"],
        {"notify_on": ["opened", "closed"]}, expect=200)
    req(srv, key, "POST", f"/v1/issues/{first['id']}/close", expect=200)
    report(srv, key, alert(event="order.export_failed", connection="erp"))
    msgs = wait_for(lambda: (lambda m: m if len(m) >= 2 else None)(smtp.messages()), 10,
                    what="the second digest")
    subjects = sorted(m["Subject"] for m in msgs[1:])
    assert subjects in (["[Sluice] 1 opened · 1 closed — Acme"],
                        ["[Sluice] 1 closed — Acme", "[Sluice] 1 opened — Acme"])


def test_smtp_down_retries_then_delivers(start_server, db, smtp):
    srv, key = start(start_server, db, smtp)  # nothing listens on the SMTP port yet
    ch = channel(srv, key)
    policy(srv, key, [{"event": "order.*"}], channel_ids=[ch["id"]])
    report(srv, key, alert())
    (iss,) = issues(srv, key)

    def failed_twice():
        n = req(srv, key, "GET", "/v1/notifications?status=pending", expect=200)["data"]
        return n if n and n[0]["attempts"] >= 2 and n[0]["last_error"] else None

    ntf = wait_for(failed_twice, 15, what="retries")
    assert ntf[0]["issue_ids"] == [iss["id"]]
    tl = [e for e in timeline(srv, key, iss["id"]) if e["kind"] == "notification_failed"]
    assert len(tl) >= 2 and "retrying at" in tl[0]["detail"]
    ready = srv.request("GET", "/readyz")[2]
    assert ready["checks"]["smtp"] not in ("ok", "disabled")
    smtp.start()
    (msg,) = wait_for(lambda: smtp.messages() or None, 20, what="the mail after recovery")
    check_mail(msg, "ops@acme.example")
    assert msg["Message-ID"] == f"<{ntf[0]['id']}@sluice.acme.example>"
    wait_for(lambda: "notified" in [e["kind"] for e in timeline(srv, key, iss["id"])], 10,
             what="notified on the timeline")
    sent = req(srv, key, "GET", "/v1/notifications?status=sent", expect=200)["data"]
    assert sent[0]["attempts"] >= 3 and sent[0]["sent_at"]


def test_gives_up_after_24h_of_retries(start_server, db, smtp):
    # 24 h of retries at --time-scale 36000 is 2.4 s
    srv = start_server(db=db, args=["--time-scale", "36000", "--smtp-url", smtp.url,
                                    "--smtp-from", FROM, "--public-url", PUBLIC])
    make_tenant(srv, "acme", "Acme")
    key = make_key(srv, "acme", ALL_PERMS)
    ch = channel(srv, key)
    # No auto-close: the scaled 24 h default would close the issue at the same moment.
    policy(srv, key, [{"event": "order.*"}], channel_ids=[ch["id"]], auto_close_after=None)
    report(srv, key, alert())
    (iss,) = issues(srv, key)
    n = wait_for(lambda: req(srv, key, "GET", "/v1/notifications?status=failed",
                             expect=200)["data"] or None, 20, what="failed")
    assert n[0]["attempts"] >= 2
    failures = [e for e in timeline(srv, key, iss["id"]) if e["kind"] == "notification_failed"]
    assert "gave up" in failures[0]["detail"], failures  # newest first
    assert all("gave up" not in e["detail"] for e in failures[1:]), failures


def test_crash_between_send_and_commit_resends_same_mail(start_server, db, smtp):
    smtp.start()
    smtp.handler.delay = 30.0  # store the mail, then hold the "250 OK"
    srv, key = start(start_server, db, smtp)
    ch = channel(srv, key)
    policy(srv, key, [{"event": "order.*"}], channel_ids=[ch["id"]])
    report(srv, key, alert())
    assert smtp.handler.stored.wait(15)
    srv.kill()  # SIGKILL: the mail went out, its outcome never committed
    smtp.handler.delay = 0.0
    srv.restart()
    msgs = wait_for(lambda: (lambda m: m if len(m) >= 2 else None)(smtp.messages()), 20,
                    what="the resend")
    wait_for(lambda: req(srv, key, "GET", "/v1/notifications?status=sent",
                         expect=200)["data"] or None, 10, what="sent")
    time.sleep(1.0)
    msgs = smtp.messages()
    assert len(msgs) == 2  # at least once, and no more than the one resend
    assert msgs[0]["Message-ID"] == msgs[1]["Message-ID"]
    assert msgs[0]["Date"] == msgs[1]["Date"] and msgs[0]["Subject"] == msgs[1]["Subject"]


def test_channels_crud_validation_and_test(start_server, db, smtp):
    smtp.start()
    srv, key = start(start_server, db, smtp)
    for body, field in [
        ({"name": "x", "type": "email", "addresses": []}, "addresses"),
        ({"name": "x", "type": "email", "addresses": ["not an address"]}, "addresses[0]"),
        ({"name": "x", "type": "email", "addresses": ["a@b.example", "x@"]}, "addresses[1]"),
        ({"name": "x", "type": "sms", "addresses": ["a@b.example"]}, "type"),
        ({"name": "", "type": "email", "addresses": ["a@b.example"]}, "name"),
        ({"name": "x", "type": "email", "addresses": ["a@b.example"], "batching": "2m"},
         "batching"),
    ]:
        assert_problem(srv.request("POST", "/v1/notification-channels", body, token=key), 422,
                       field)
    ch = channel(srv, key, batching="15m")
    assert ch["id"].startswith("chn_") and ch["batching"] == "15m"
    p = req(srv, key, "PATCH", f"/v1/notification-channels/{ch['id']}",
            {"batching": "1d", "addresses": ["a@acme.example"]}, expect=200)
    assert p["batching"] == "1d" and p["addresses"] == ["a@acme.example"] and p["name"] == "Ops team"
    assert req(srv, key, "GET", f"/v1/notification-channels/{ch['id']}", expect=200) == p
    assert [c["id"] for c in req(srv, key, "GET", "/v1/notification-channels",
                                 expect=200)["data"]] == [ch["id"]]
    t = req(srv, key, "POST", f"/v1/notification-channels/{ch['id']}/test", expect=200)
    assert t["ok"] is True and t["error"] is None
    (msg,) = wait_for(lambda: smtp.messages() or None, 10, what="the test mail")
    assert msg["Subject"] == "[Sluice] Test message — Acme"
    assert msg["X-RcptTo"] == "a@acme.example"
    assert msg["Auto-Submitted"] == "auto-generated"
    smtp.stop()
    t = req(srv, key, "POST", f"/v1/notification-channels/{ch['id']}/test", expect=200)
    assert t["ok"] is False and t["error"]
    assert srv.request("DELETE", f"/v1/notification-channels/{ch['id']}", token=key)[0] == 204
    assert_problem(srv.request("GET", f"/v1/notification-channels/{ch['id']}", token=key), 404)


def test_mail_disabled_without_smtp(start_server, db):
    srv = start_server(db=db, args=["--time-scale", "3600"])
    make_tenant(srv, "acme", "Acme")
    key = make_key(srv, "acme", ALL_PERMS)
    assert srv.request("GET", "/readyz")[2]["checks"]["smtp"] == "disabled"
    ch = channel(srv, key)
    assert_problem(srv.request("POST", f"/v1/notification-channels/{ch['id']}/test",
                               token=key), 409)
    policy(srv, key, [{"event": "order.*"}], channel_ids=[ch["id"]])
    report(srv, key, alert())
    n = req(srv, key, "GET", "/v1/notifications", expect=200)["data"]
    assert len(n) == 1 and n[0]["status"] == "pending"  # kept until mail is configured


@pytest.mark.parametrize("mode", ["starttls", "smtps"])
def test_tls_mail_with_a_verified_certificate(start_server, db, tmp_path, mode):
    """STARTTLS (offered and required by the server) and implicit TLS (smtps://): the mail
    goes encrypted, after the server's certificate was verified against --smtp-ca-file;
    without that file the self-signed certificate is refused and nothing is sent."""
    smtp = Smtp(tmp_path, tls=mode).start()
    try:
        srv, key = start(start_server, db, smtp)  # the system CAs: the certificate fails
        ch = channel(srv, key)
        policy(srv, key, [{"event": "order.*"}], channel_ids=[ch["id"]])
        report(srv, key, alert())

        def refused():
            n = req(srv, key, "GET", "/v1/notifications?status=pending", expect=200)["data"]
            return n if n and n[0]["attempts"] >= 1 and n[0]["last_error"] else None

        ntf = wait_for(refused, 15, what="a refused TLS handshake")
        assert re.search(r"certificate|SSL|TLS", ntf[0]["last_error"], re.I), ntf
        assert smtp.messages() == []
        srv.stop()

        # The same database (and data dir), now trusting the certificate: the pending mail goes.
        start_server(db=db, data_dir=srv.data_dir,
                     args=["--time-scale", "3600", "--smtp-url", smtp.url, "--smtp-from", FROM,
                           "--public-url", PUBLIC, "--lease", "2s", "--smtp-ca-file", smtp.cert])
        (msg,) = wait_for(lambda: smtp.messages() or None, 20, what="the mail over TLS")
        check_mail(msg, "ops@acme.example")
        assert msg["Message-ID"] == f"<{ntf[0]['id']}@sluice.acme.example>"
        assert smtp.handler.tls == [True]
    finally:
        smtp.stop()
