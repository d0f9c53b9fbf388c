// A real S3 server for the tests: s3rver (npm) on loopback behind a verifying front.
//
// s3rver does not check SigV4 signatures, so every request first reaches this front, which
// recomputes its signature with npm's aws4 from the test's own secret (over exactly the
// headers the request says it signed) and answers 403 SignatureDoesNotMatch on any
// difference; it also checks x-amz-content-sha256 against the real body. Requests that pass
// go on to s3rver without their Authorization header.
//
// Control (no auth, JSON): POST /__control {"fail": [{"status", "code", "message", "count",
// "method", "retry_after"}], "hold": bool, "drop": n} queues injected failures (e.g. 503
// SlowDown), holds every object upload unanswered, or closes the connection of the next n
// uploads (PUT) after the first bytes of their body, without an answer; GET /__log returns
// every request seen; POST /__reset clears all of it.
//
// Usage: node s3front.js PORT DIR ACCESS_KEY_ID SECRET REGION BUCKET...
// Prints "READY <front port> <s3rver port>" when listening.
'use strict';

const crypto = require('crypto');
const http = require('http');
const aws4 = require('aws4');
const S3rver = require('s3rver');

const [port, dir, akid, secret, region, ...buckets] = process.argv.slice(2);

const state = { fail: [], hold: false, held: [], log: [], drop: 0 };

function s3error(res, status, code, message, retryAfter) {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code>` +
    `<Message>${message}</Message><RequestId>front</RequestId></Error>`;
  const headers = { 'Content-Type': 'application/xml',
    'Content-Length': Buffer.byteLength(body) };
  if (retryAfter !== undefined) headers['Retry-After'] = String(retryAfter);
  res.writeHead(status, headers);
  res.end(body);
}

// Returns null when the signature is right, else the reason.
function verify(req, body) {
  const auth = req.headers.authorization || '';
  const m = auth.match(/^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, *SignedHeaders=([^,]+), *Signature=([0-9a-f]{64})$/);
  if (!m) return ['AccessDenied', 'no SigV4 Authorization header'];
  const [, keyId, date, reg, service, signed, signature] = m;
  if (keyId !== akid) return ['InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.'];
  if (reg !== region || service !== 's3') return ['AuthorizationHeaderMalformed', `wrong region or service ${reg}/${service}`];
  const headers = {};
  for (const h of signed.split(';')) {
    const v = req.headers[h];
    if (v === undefined) return ['SignatureDoesNotMatch', `signed header ${h} is missing`];
    headers[h] = v;
  }
  if (!headers['x-amz-date'] || !headers['x-amz-date'].startsWith(date)) return ['SignatureDoesNotMatch', 'x-amz-date'];
  if (!headers.host) return ['SignatureDoesNotMatch', 'host is not signed'];
  const sha = crypto.createHash('sha256').update(body).digest('hex');
  if (req.headers['x-amz-content-sha256'] !== sha) return ['XAmzContentSHA256Mismatch', 'The provided \'x-amz-content-sha256\' header does not match what was computed.'];
  const signer = new aws4.RequestSigner({ method: req.method, path: req.url, headers,
    service: 's3', region, doNotModifyHeaders: true, extraHeadersToInclude: Object.fromEntries(signed.split(';').map((h) => [h, true])) },
  { accessKeyId: akid, secretAccessKey: secret });
  signer.datetime = headers['x-amz-date'];
  const expected = signer.signature();
  if (expected !== signature) return ['SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.'];
  return null;
}

async function main() {
  const s3 = new S3rver({ port: 0, address: '127.0.0.1', directory: dir, silent: true,
    configureBuckets: buckets.map((name) => ({ name })) });
  const addr = await s3.run();
  const upstream = addr.port;

  const server = http.createServer((req, res) => {
    const chunks = [];
    if (!req.url.startsWith('/__') && req.method === 'PUT' && state.drop > 0) {
      state.drop--;
      state.log.push({ method: req.method, url: req.url, dropped: true, at: Date.now() });
      req.once('data', () => req.socket.destroy()); // mid-upload: some body, then gone
      return;
    }
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.url.startsWith('/__')) return control(req, res, body);
      const entry = { method: req.method, url: req.url, headers: req.headers, bytes: body.length,
        sha256: crypto.createHash('sha256').update(body).digest('hex'), at: Date.now() };
      state.log.push(entry);
      const bad = verify(req, body);
      if (bad) {
        entry.status = 403;
        entry.error = bad[0];
        return s3error(res, bad[0] === 'XAmzContentSHA256Mismatch' ? 400 : 403, bad[0], bad[1]);
      }
      const f = state.fail.find((x) => x.count > 0 && (!x.method || x.method === req.method));
      if (f) {
        f.count--;
        entry.status = f.status;
        entry.error = f.code;
        return s3error(res, f.status, f.code, f.message || f.code, f.retry_after);
      }
      if (state.hold && req.method === 'PUT') {
        entry.held = true;
        state.held.push(res);
        return;
      }
      const headers = { ...req.headers };
      delete headers.authorization;
      headers['content-length'] = String(body.length);
      delete headers['transfer-encoding'];
      const up = http.request({ host: '127.0.0.1', port: upstream, method: req.method,
        path: req.url, headers }, (ur) => {
        entry.status = ur.statusCode;
        res.writeHead(ur.statusCode, ur.headers);
        ur.pipe(res);
      });
      up.on('error', (e) => s3error(res, 502, 'BadGateway', String(e)));
      up.end(body);
    });
  });

  function control(req, res, body) {
    let out = { ok: true };
    if (req.url === '/__control') {
      const c = JSON.parse(body.toString() || '{}');
      if (c.fail) state.fail.push(...c.fail);
      if (c.hold !== undefined) state.hold = c.hold;
      if (c.drop !== undefined) state.drop = c.drop;
    } else if (req.url === '/__log') {
      out = state.log;
    } else if (req.url === '/__reset') {
      state.fail = [];
      state.log = [];
      state.hold = false;
      state.drop = 0;
    }
    const s = JSON.stringify(out);
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(s);
  }

  server.listen(Number(port), '127.0.0.1', () => {
    process.stdout.write(`READY ${server.address().port} ${upstream}\n`);
  });
  const stop = () => { server.close(); s3.close(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => { console.error(e); process.exit(1); });
