// A real Pyroscope client (@pyroscope/nodejs) profiling a busy loop and pushing to the relay.
// It wraps global fetch (the client's transport) to print, for each upload, exactly what the
// client sent: URL, content type, byte length and SHA-256 of the body, one JSON line each.
const crypto = require('node:crypto');
const Pyroscope = require('@pyroscope/nodejs');

const realFetch = globalThis.fetch;
globalThis.fetch = async (url, init) => {
  const body = Buffer.from(init.body instanceof ArrayBuffer ? new Uint8Array(init.body) : init.body);
  const headers = new Headers(init.headers);
  const res = await realFetch(url, init);
  console.log(JSON.stringify({
    url: String(url), status: res.status, contentType: headers.get('content-type'),
    length: body.length, sha256: crypto.createHash('sha256').update(body).digest('hex'),
  }));
  return res;
};

Pyroscope.init({
  serverAddress: process.env.RELAY_ADDRESS,
  appName: 'nodejs.it',
  flushIntervalMs: 1000,
  tags: { region: 'loopback' },
});
Pyroscope.start();
let x = 0;
const end = Date.now() + 2500;
while (Date.now() < end) x += Math.sqrt(Math.random());
Pyroscope.stop().then(() => process.exit(x > 0 ? 0 : 1));
