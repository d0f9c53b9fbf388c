"""The console's server side: every embedded web/ file served with its Content-Type, an ETag
that revalidates (304), and the security headers (a strict CSP without inline script, no
framing, nosniff, no referrer); and the unsubscribe link of notification mails, followed as a
recipient would: the link parsed out of a real mail (aiosmtpd), GET shows a confirmation page
and changes nothing, POST (RFC 8058 one-click) unsubscribes that address from that channel
only, the channel shows who left and when, and a forged link is refused. Both databases for
the unsubscribe; the files do not touch the database."""

import os
import re
import urllib.parse

import pytest

from alerting_helpers import Smtp, alert, channel, issues, policy, report, req
from conftest import ALL_PERMS, REPO, RFC3339_MS, make_key, make_tenant, wait_for

PUBLIC_PATH = "/unsubscribe/"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


def check_security_headers(h):
    csp = h["content-security-policy"]
    directives = dict((d.strip().split(" ", 1) + [""])[:2] for d in csp.split(";"))
    assert directives["default-src"] == "'none'", csp
    assert directives["script-src"] == "'self'", csp
    assert directives["style-src"] == "'self'", csp
    assert directives["frame-ancestors"] == "'none'", csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, csp
    assert h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] == "no-referrer"


def test_console_files_types_caching_and_headers(start_server):
    srv = start_server()
    status, h, body = srv.request("GET", "/")
    assert status == 200 and h["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/ui/app.js"></script>' in body
    check_security_headers(h)
    assert h["cache-control"] == "no-cache" and re.fullmatch(r'"[0-9a-f]{16}"', h["etag"])
    # an unchanged file revalidates to 304, still with the headers; a stale tag gets the file
    status, h2, body = srv.request("GET", "/", headers={"If-None-Match": h["etag"]})
    assert status == 304 and body == "" and h2["etag"] == h["etag"]
    check_security_headers(h2)
    assert srv.request("GET", "/", headers={"If-None-Match": '"0000"'})[0] == 200
    # every file of web/ (and the vendored lit-html) is served from /ui/ with its type
    served = 0
    for root, _, files in os.walk(os.path.join(REPO, "web")):
        for f in files:
            rel = os.path.relpath(os.path.join(root, f), os.path.join(REPO, "web"))
            status, h, body = srv.request("GET", "/ui/" + rel)
            assert status == 200, rel
            assert h["content-type"] == TYPES[os.path.splitext(f)[1]], (rel, h)
            with open(os.path.join(root, f), encoding="utf-8") as fh:
                assert body == fh.read(), rel
            check_security_headers(h)
            served += 1
    assert served >= 5
    status, h, body = srv.request("GET", "/ui/vendor/lit-html.js")
    assert status == 200 and h["content-type"].startswith("text/javascript") and "lit" in body
    for path in ("/ui/nope.js", "/ui/vendor/nope.js", "/ui/a/b/c.js", "/ui/..%2fMakefile"):
        assert srv.request("GET", path)[0] == 404, path
    assert srv.request("POST", "/ui/app.js")[0] == 405


@pytest.fixture
def smtp(tmp_path):
    s = Smtp(tmp_path)
    yield s
    s.stop()


def link_of(msg):
    """The unsubscribe URL of a mail: List-Unsubscribe, which the text part repeats."""
    url = msg["List-Unsubscribe"][1:-1]
    text = msg.get_body(("plain",)).get_content()
    assert f"Stop these mails: {url}" in text
    return urllib.parse.urlsplit(url).path


def test_unsubscribe_link_from_a_real_mail(start_server, db, smtp):
    smtp.start()
    srv = start_server(db=db, args=["--smtp-url", smtp.url, "--smtp-from", "alerts@acme.example",
                                    "--public-url", "https://sluice.acme.example"])
    make_tenant(srv, "acme", "Acme")
    key = make_key(srv, "acme", ALL_PERMS)
    ch = channel(srv, key, ["ops@acme.example", "Oncall@acme.example"])
    assert ch["unsubscribed"] == []
    policy(srv, key, [{"event": "order.*"}], channel_ids=[ch["id"]], auto_close_after=None)
    report(srv, key, alert(connection="shop-1"))
    mails = wait_for(lambda: (lambda m: m if len(m) >= 2 else None)(smtp.messages()), 10,
                     what="one mail per address")
    (mine,) = [m for m in mails if m["To"] == "Oncall@acme.example"]
    path = link_of(mine)
    assert path.startswith(PUBLIC_PATH)

    # GET: a confirmation page with a form that POSTs; nothing changes yet
    status, h, page = srv.request("GET", path)
    assert status == 200 and h["content-type"] == "text/html; charset=utf-8", page
    check_security_headers(h)
    assert "Oncall@acme.example" in page and "Ops team" in page
    assert re.search(r'<form method="post">.*name="List-Unsubscribe" value="One-Click"', page)
    assert "<script" not in page
    assert req(srv, key, "GET", f"/v1/notification-channels/{ch['id']}",
               expect=200)["addresses"] == ["ops@acme.example", "Oncall@acme.example"]

    # a link whose address, channel or tag was changed is refused
    token = path[len(PUBLIC_PATH):]
    payload, tag = token.split(".")
    forged = [payload + "." + tag[:-1] + ("A" if tag[-1] != "A" else "B"),
              payload[:-2] + "." + tag, "x" + token, payload, "." + tag]
    for t in forged:
        for method in ("GET", "POST"):
            status, h, page = srv.request(method, PUBLIC_PATH + t)
            assert status == 404 and "not valid" in page, (t, method, status)
    assert len(req(srv, key, "GET", f"/v1/notification-channels/{ch['id']}",
                   expect=200)["addresses"]) == 2

    # POST, as a mail client's one-click does (RFC 8058): unsubscribed at once
    status, h, page = srv.request("POST", path, raw="List-Unsubscribe=One-Click",
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and "Unsubscribed" in page and "Oncall@acme.example" in page, page
    check_security_headers(h)
    c = req(srv, key, "GET", f"/v1/notification-channels/{ch['id']}", expect=200)
    assert c["addresses"] == ["ops@acme.example"]  # the channel keeps its other addresses
    (u,) = c["unsubscribed"]
    assert u["address"] == "Oncall@acme.example" and RFC3339_MS.match(u["at"])
    listed = req(srv, key, "GET", "/v1/notification-channels", expect=200)["data"]
    assert listed[0]["unsubscribed"] == c["unsubscribed"]
    # following the link again is harmless
    status, _, page = srv.request("GET", path)
    assert status == 200 and "Already unsubscribed" in page and "<form" not in page
    status, _, page = srv.request("POST", path, raw="List-Unsubscribe=One-Click")
    assert status == 200 and "already off" in page
    assert req(srv, key, "GET", f"/v1/notification-channels/{ch['id']}",
               expect=200)["unsubscribed"] == c["unsubscribed"]

    # the next issue mails only the address that stayed
    report(srv, key, alert(connection="shop-2"))
    assert len(issues(srv, key)) == 2
    mails = wait_for(lambda: (lambda m: m if len(m) >= 3 else None)(smtp.messages()), 10,
                     what="the next mail")
    assert [m["X-RcptTo"] for m in mails[2:]] == ["ops@acme.example"]
    wait_for(lambda: all(n["status"] == "sent" for n in
                         req(srv, key, "GET", "/v1/notifications", expect=200)["data"]), 10,
             what="both notifications sent")

    # an operator who lists the address again subscribes it again
    c = req(srv, key, "PATCH", f"/v1/notification-channels/{ch['id']}",
            {"addresses": ["ops@acme.example", "oncall@acme.example"]}, expect=200)
    assert c["unsubscribed"] == []

    # the other address may leave too, through its own link
    for m in mails[2:]:
        assert srv.request("POST", link_of(m))[0] == 200
    c = req(srv, key, "GET", f"/v1/notification-channels/{ch['id']}", expect=200)
    assert c["addresses"] == ["oncall@acme.example"]


def test_unsubscribe_when_the_channel_is_gone(start_server, smtp):
    smtp.start()
    srv = start_server(args=["--smtp-url", smtp.url])
    make_tenant(srv, "acme", "Acme")
    key = make_key(srv, "acme", ALL_PERMS)
    ch = channel(srv, key, ["ops@acme.example"])
    assert req(srv, key, "POST", f"/v1/notification-channels/{ch['id']}/test",
               expect=200)["ok"] is True
    (msg,) = wait_for(lambda: smtp.messages() or None, 10, what="the test mail")
    path = link_of(msg)
    assert srv.request("DELETE", f"/v1/notification-channels/{ch['id']}", token=key)[0] == 204
    for method in ("GET", "POST"):
        status, h, page = srv.request(method, path)
        assert status == 404 and "no longer exists" in page, (method, page)
        check_security_headers(h)
