// Reads a bucket back with an S3 client the project did not write (@aws-sdk/client-s3),
// straight from s3rver: prints [{key, size, etag, content_type, content_encoding, body_b64}]
// for every object (optionally under a prefix), sorted by key.
// Usage: node s3read.js S3RVER_PORT BUCKET [PREFIX]
'use strict';

const { S3Client, ListObjectsV2Command, GetObjectCommand } = require('@aws-sdk/client-s3');

async function main() {
  const [port, bucket, prefix] = process.argv.slice(2);
  const client = new S3Client({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1',
    forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  const out = [];
  let token;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix || undefined,
      ContinuationToken: token }));
    for (const o of page.Contents || []) {
      const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key }));
      const body = Buffer.from(await r.Body.transformToByteArray());
      out.push({ key: o.Key, size: o.Size, etag: o.ETag, content_type: r.ContentType || null,
        content_encoding: r.ContentEncoding || null, body_b64: body.toString('base64') });
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  out.sort((a, b) => (a.key < b.key ? -1 : 1));
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => { console.error(e); process.exit(1); });
