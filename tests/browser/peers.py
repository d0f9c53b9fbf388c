"""The real peers of the browser tests, in one child process: the webhook receiver of the
integration tests (receiver.py) and aiosmtpd (alerting_helpers.Smtp, a maildir on disk).

Prints "READY <receiver port> <smtp port>" and runs until its stdin closes (the test
process ended), so it never outlives the tests. The node tests steer it through the
receiver itself, on paths no integration uses:
  POST /_control {"path": "/erp", "status": 422}   answer that path with that status from now
  GET  /_count?path=/erp                           {"count": n} requests received on the path
  GET  /_mail                                      every stored mail, parsed: [{"to", "subject",
                                                   "list_unsubscribe", "list_unsubscribe_post",
                                                   "text", "html"}]
Stdlib + aiosmtpd only; run with /usr/bin/python3."""

import json
import os
import sys
import tempfile
import pathlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from alerting_helpers import Smtp  # noqa: E402
from receiver import Receiver  # noqa: E402


def main():
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="sluice-browser-peers-"))
    smtp = Smtp(tmp).start()
    rcv = Receiver()

    def control(req):
        body = req.json
        rcv.set(body["path"], int(body["status"]))
        return 204

    def count(req):
        path = req.target.split("path=", 1)[1] if "path=" in req.target else None
        n = len(rcv.got(path))
        return 200, {"Content-Type": "application/json"}, json.dumps({"count": n}).encode()

    def mail(req):
        out = []
        for m in smtp.messages():
            text = m.get_body(("plain",))
            html = m.get_body(("html",))
            out.append({"to": m["To"], "subject": m["Subject"],
                        "list_unsubscribe": m["List-Unsubscribe"],
                        "list_unsubscribe_post": m["List-Unsubscribe-Post"],
                        "text": text.get_content() if text else "",
                        "html": html.get_content() if html else ""})
        return 200, {"Content-Type": "application/json"}, json.dumps(out).encode()

    rcv.set("/_control", control)
    rcv.set("/_count", count)
    rcv.set("/_mail", mail)
    print(f"READY {rcv.port} {smtp.port}", flush=True)
    try:
        sys.stdin.read()  # until the test process closes our stdin (or dies)
    finally:
        rcv.stop()
        smtp.stop()


if __name__ == "__main__":
    main()
