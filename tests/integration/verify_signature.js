// Verifies Standard Webhooks signatures with npm's `standardwebhooks` package (not Sluice's
// own code). Reads {"secret": "whsec_...", "items": [{"headers": {...}, "body": "raw text"
// | "body_b64": "..."}]} on stdin; prints [{"ok": true, "payload": {...}} | {"ok": false,
// "error": "..."}] on stdout, one entry per item, in order. An item may carry its own
// "secret".
//
// One-off use:  echo '{"secret":"whsec_…","items":[{"headers":{…},"body":"…"}]}' | node verify_signature.js
"use strict";
const { Webhook } = require("standardwebhooks");

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", () => {
  const req = JSON.parse(input);
  const out = req.items.map((it) => {
    const wh = new Webhook(it.secret || req.secret); // an item may carry its own secret
    const raw = it.body_b64 !== undefined ? Buffer.from(it.body_b64, "base64") : Buffer.from(it.body, "utf8");
    try {
      return { ok: true, payload: wh.verify(raw, it.headers) };
    } catch (e) {
      return { ok: false, error: String(e && e.message ? e.message : e) };
    }
  });
  process.stdout.write(JSON.stringify(out));
});
