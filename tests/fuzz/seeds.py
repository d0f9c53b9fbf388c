#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into tests/fuzz/corpus/<target>/seed-<n>.

Seeds are valid and nearly valid requests taken from docs/api.md, one file each; body targets
take a first byte that picks the route (see each fuzz_*.c). Run it after changing a target's
input format; the files are committed. Crashers kept as regression inputs live next to the
seeds as regress-<what> and are never touched here."""

import base64
import hashlib
import hmac
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, items):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith("seed-"):
            os.remove(os.path.join(d, f))
    for i, data in enumerate(items):
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(d, f"seed-{i:02d}"), "wb") as f:
            f.write(data)


def body(route, obj):
    text = obj if isinstance(obj, str) else json.dumps(obj)
    return bytes([route]) + text.encode()


write("time", ["2026-11-22T10:15:30Z", "2026-11-22T10:15:30.123Z", "2026-11-22t10:15:30.5+05:30",
               "2024-02-29 23:59:60-00:00", "1970-01-01T00:00:00.000000001Z", "0000-01-01T00:00:00+23:59",
               "9999-12-31T23:59:59.999Z", "500ms", "30s", "5m", "24h", "7d", "1h30m", "1d2h3m4s5ms",
               "3650d", "0s"])

write("retry_after", ["Retry-After: 120\r\n", "retry-after:\t5\r\n", "Retry-After: 0\r\n",
                      "Retry-After: Wed, 21 Oct 2026 07:28:00 GMT\r\n",
                      "Retry-After: Fri, 31 Dec 9999 23:59:59 GMT\r\n", "Retry-After: 604800\r\n",
                      "Retry-After: -1\r\n", "Content-Type: text/plain\r\n", "120", " 5 "])

write("s3_error", [
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce '
    'your request rate.</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>',
    "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does "
    "not match</Message></Error>",
    "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>VXBsb2FkIElE"
    "</UploadId></InitiateMultipartUploadResult>",
    "<Error><Code></Code><Message>", "<Code>" + "A" * 100 + "</Code>", "<ETag>\"abc\"</ETag>",
])

write("json", ['{"a":1,"b":[true,false,null],"c":{"d":"e"}}', "[" * 64 + "]" * 64,
               "[" * 65 + "]" * 65, '{"a":1,"a":2}', '"\\ud83d\\ude00"', '"\xc3\xa9"',
               b'"\xff"', "1e400", '{"x":"\\u0000"}', "[1,2,3", ""])


def cursor(parts, lst="events", tenant="fz"):
    key = hmac.new(b"\x5a" * 32, b"sluice list cursors v1", hashlib.sha256).digest()
    payload = json.dumps(parts, separators=(",", ":"))
    mac = hmac.new(key, lst.encode() + b"\0" + tenant.encode() + b"\0" + payload.encode(),
                   hashlib.sha256).digest()[:16]
    b64 = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")
    return b64(payload.encode()) + "." + b64(mac)


write("cursor", [cursor(["evt_01M843P7KB2593EZT74W4ECJA9"]),
                 cursor(["1795000000000", "alr_01M843P7KB2593EZT74W4ECJA9"]),
                 cursor(["a", "b", "c"]), cursor(["x"], tenant="other"),
                 "W10.ODV_dQbACt0bfXGC6iPlKA", "e30.AAAAAAAAAAAAAAAAAAAAAA", "a\0b\0c", "."])

write("config", [
    b"--listen\0127.0.0.1:0\0--lease\x0030s\0--time-scale\x00100",
    b"--listen=[::1]:8080\0--roles=api,webhook\0--allow-private-targets",
    b"--s3-batch-max-bytes\x0064KiB\0--rate-limit\x002.5\0--http-threads\x008",
    b"--help",
    b"--webhook-timeout\x00500ms\n#FILE\n# comment\nlisten = :9000\nlease = 1m\n"
    b"s3-batch-max-bytes = 50MB\nretention-events = 7d\nlog-level = debug\n",
    b"\n#FILE\nsmtp-url = smtp://user:pass@mail.example.com:587\nsmtp-from = a@b.c\n",
    b"\n#FILE\nbogus\n",
    b"--s3-batch-max-bytes\x001e15GiB",
])

# Body targets: route byte, then the body.
events = [
    {"id": "ord-1001-created", "type": "order.created", "entity_id": "ORD-1001",
     "payload": {"total": "49.90", "currency": "EUR"}},
    {"events": [{"id": "ord-1001-created", "type": "order.created", "entity_id": "ORD-1001"},
                {"type": "order.payment_captured", "entity_id": "ORD-1001",
                 "occurred_at": "2026-11-22T10:15:30.123Z", "payload": {"amount": "49.90"}}]},
    {"events": [{"type": "order.created", "entity_id": "ORD-1"},
                {"type": "order.shipped", "entity_id": "", "colour": "red"}]},
    {"events": []},
]
write("events", [body(0, e) for e in events] + [
    body(1, {"name": "order.gift_wrapped", "description": "a gift option was chosen"}),
    body(1, {"name": "Bad Name"}), body(0, "[1,2]"), body(0, "{")])

write("alerts", [
    body(0, {"event": "order.import_failed", "message": "SKU ABC-1 not found",
             "connection": "shopify-main", "entity_id": "ORD-1001", "task_id": "$TSK",
             "details": {"sku": "ABC-1"}, "occurred_at": "2026-11-22T10:15:30Z"}),
    body(0, {"alerts": [{"event": "shipment.tracking_failed", "message": "m"},
                        {"event": "event_stream.delivery_failed", "message": "not yours"}]}),
    body(1, {"kind": "order_import", "connection": "shopify-main", "entity_id": "ORD-1",
             "status": "failed", "started_at": "2026-11-22T10:00:00Z",
             "finished_at": "2026-11-22T10:01:00Z", "details": {"rows": 3}}),
    body(2, {"status": "succeeded", "finished_at": "2026-11-22T10:05:00Z"}),
    body(3, ""), body(3, {}),
])

webhook = {"type": "webhook", "url": "https://erp.example.com/hooks", "api_key": "secret",
           "api_key_header": "Authorization"}
s3 = {"type": "s3", "bucket": "lake", "region": "eu-west-1", "key_prefix": "events/",
      "access_key_id": "AKIAEXAMPLE", "secret_access_key": "wJalrXUtnFEMI", "endpoint":
      "http://192.0.2.7:9000", "compression": "gzip"}
write("integrations", [
    body(0, {"id": "erp-orders", "type": "permanent", "events": ["order", "return.created"],
             "ordering": "entity", "max_in_flight": 16, "target": webhook}),
    body(0, {"id": "replay", "type": "temporary", "start_at": "2026-11-01T00:00:00Z",
             "end_at": "2026-11-02T00:00:00Z", "events": ["order"], "target": webhook}),
    body(0, {"id": "lake2", "events": ["order"], "verify": False, "target": s3}),
    body(0, {"id": "ssrf", "events": ["order"], "target": {"type": "webhook",
                                                           "url": "http://0x7f.1/"}}),
    body(0, {"id": "ssrf6", "events": ["order"], "target": {"type": "webhook",
                                                            "url": "http://[::ffff:127.0.0.1]/"}}),
    body(1, {"events": ["order", "shipment"], "max_in_flight": 4,
             "target": {"url": "https://erp.example.com/v2", "api_key": "****7f3a9c"}}),
    body(2, {"target": {"compression": "none", "secret_access_key": "****8b"}, "verify": False}),
    body(3, {"event_ids": ["$EVT"]}),
    body(3, {"status": "rejected", "from": "2026-11-22T00:00:00Z", "to": "2026-11-23T00:00:00Z"}),
    body(4, {"reason": "maintenance"}), body(5, {"skip_backlog": True}), body(4, ""),
])

write("policies", [
    body(0, {"name": "Order imports", "enabled": True,
             "monitored_events": [{"event": "order.import_failed", "connections": ["shopify-main"]},
                                  {"event": "shipment.*", "connections": []}],
             "channel_ids": ["$CHN"], "group_by": ["event", "connection"],
             "auto_close_after": "24h", "close_on_recovery": True,
             "notify_on": ["opened", "closed"]}),
    body(0, {"name": "x", "monitored_events": [{"event": "order.*"}], "auto_close_after": None,
             "group_by": []}),
    body(1, {"enabled": False, "auto_close_after": "366d"}),
    body(1, {"group_by": ["entity_id", "message"], "channel_ids": []}),
    body(2, {"monitored_events": [{"event": "inventory.sync_failed"}]}),
])

write("channels", [
    body(0, {"name": "Ops team", "type": "email", "addresses": ["ops@acme.example"],
             "batching": "15m"}),
    body(0, {"name": "All", "addresses": ["a@b.c", "d@e.f"], "batching": "immediate"}),
    body(1, {"batching": "1d", "addresses": ["x@y.z"]}), body(1, {"type": "sms"}),
])

write("issue_actions", [body(0, ""), body(1, {"comment": "fixed the SKU mapping"}), body(2, ""),
                        body(3, {"comment": "looking into it"}), body(1, {}), body(3, "{}")])

write("admin", [body(0, {"id": "acme", "name": "Acme Retail"}),
                body(1, {"name": "erp", "permissions": ["events:publish", "tools:view"]}),
                body(1, {"name": "x", "permissions": ["nope"]}), body(0, {"id": "bad id!"})])

# Query: route byte (lists in route-table order, then /v1/stats), key byte, query string.
write("query", [bytes([r, k]) + q.encode() for r, k, q in [
    (0, 2, "limit=10"), (1, 2, "limit=1"), (3, 0, "limit=1000&type=order.created&entity_id=ORD-1"),
    (3, 0, "from=2026-11-22T00:00:00Z&to=2026-11-23T00:00:00Z"), (3, 0, "cursor=abc.def"),
    (4, 0, "state=paused"), (5, 0, "status=failure&limit=5"), (6, 0, "limit=2"),
    (9, 0, "event=order.import_failed&issue_id=$ISS&task_id=$TSK"), (10, 1, "status=failed"),
    (15, 0, "status=open&policy_id=$POL"), (17, 0, "limit=3"), (2, 0, "limit=0"),
    (2, 0, "limit=%31%30"), (8, 0, "bogus=1"), (3, 0, "limit=1&limit=2"), (18, 0, "status=sent"),
    (19, 0, "from=2026-11-22T00:00:00Z&bucket=1h"), (19, 0, "bucket=1m&to=x"), (3, 2, "")]])

write("router", [bytes([k]) + p.encode() for k, p in [
    (0, "GET /v1/integrations/$INT"), (0, "DELETE /v1/alert-policies/$POL"),
    (1, "GET /v1/events/$EVT"), (2, "GET /v1/issues/$ISS"), (3, "GET /v1/admin/tenants"),
    (3, "GET /v1/events"), (4, "GET /v1/me"), (0, "PUT /v1/events"),
    (0, "GET /v1/../v1/events"), (0, "GET /v1/integrations/%2e%2e/logs"), (0, "GET //v1/events"),
    (0, "GET /ui/app.js"), (0, "GET /unsubscribe/abc"), (0, "POST /v1/notification-channels/$CHN/test"),
    (0, "GET /v1/integrations/$INT/events/$EVT/attempts"), (0, "OPTIONS /v1/events")]])

write("http", [
    "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $KEY\r\n"
    "Content-Type: application/json\r\nContent-Length: 47\r\n\r\n"
    '{"type":"order.created","entity_id":"ORD-1"}   ',
    "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $KEY\r\n"
    "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    '2c\r\n{"type":"order.created","entity_id":"ORD-2"}\r\n0\r\n\r\n',
    "GET /v1/events?limit=2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $KEY\r\n\r\n"
    "GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $OTHER\r\n\r\n",
    "GET /v1/admin/tenants HTTP/1.0\r\nAuthorization: Bearer $ADMIN\r\n\r\n",
    "PATCH /v1/integrations/$INT HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $KEY\r\n"
    "Content-Type: application/json; charset=utf-8\r\nContent-Length: 25\r\n\r\n"
    '{"max_in_flight": 3}     ',
    "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
    "GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Basic Zm9vOmJhcg==\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
    "DELETE /v1/admin/tenants/fz/keys/key_x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $ADMIN\r\n\r\n",
])
