// The edge holds (#12): per-client limits on login starts, callbacks and
// setup tokens (429 with Retry-After), the trusted proxy's X-Forwarded-For,
// caps on pending logins, repeated failures aggregated in the audit log.
// Only loopback traffic, bounded loops.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync, readFileSync } from 'node:fs';
import net from 'node:net';
import http from 'node:http';
import { startPortico, waitFor } from './harness.mjs';
import { Client, csrfFrom } from './client.mjs';
import { setupAdmin, createIntegration, authorizeAuto, text } from './login_lib.mjs';

let sys;
let admin;
let integ;

before(async () => {
  sys = await startPortico({
    name: 'edge', autoApprove: 'jdoe',
    // The harness's own address is the proxy: X-Forwarded-For then names
    // the clients, so one test process can be many clients.
    env: { PORTICO_TRUSTED_PROXIES: '127.0.0.1/32' },
  });
  admin = await setupAdmin(sys);
  integ = await createIntegration(admin, sys.emulator, { name: 'Edge Bitbucket' });
});
after(async () => {
  if (sys) await sys.stop();
});

function as(ip, c = new Client(sys.webUrl)) {
  const get = c.get.bind(c);
  const post = c.post.bind(c);
  c.get = (p, o = {}) => get(p, { ...o, headers: { 'x-forwarded-for': ip, ...(o.headers || {}) } });
  c.post = (p, f, o = {}) => post(p, f, { ...o, headers: { 'x-forwarded-for': ip, ...(o.headers || {}) } });
  return c;
}

test('login starts are limited per client with 429 and Retry-After; other clients go on', async () => {
  let refused;
  for (let i = 0; i < 30 && !refused; i++) {
    const r = await as('198.51.100.10').get(`/login/start/${integ.id}`);
    if (r.status === 429) refused = r;
    else assert.equal(r.status, 303, `start ${i}: ${r.status}`);
  }
  assert.ok(refused, 'one client cannot start 30 logins in a minute');
  assert.match(refused.headers.get('retry-after') || '', /^\d+$/);
  assert.match(text(refused.text), /Too many attempts/);
  // Another client behind the same proxy is not affected.
  const other = await as('198.51.100.11').get(`/login/start/${integ.id}`);
  assert.equal(other.status, 303);
});

test('IPv6 clients count by their /64: new addresses in it share its limit, another /64 has its own', async () => {
  // A host given a /64 has 2^64 addresses to start from.
  let refused;
  for (let i = 1; i <= 30 && !refused; i++) {
    const r = await as(`2001:db8:7:1:${i.toString(16)}::${i.toString(16)}`).get(`/login/start/${integ.id}`);
    if (r.status === 429) refused = r;
    else assert.equal(r.status, 303, `start ${i}: ${r.status}`);
  }
  assert.ok(refused, 'thirty addresses of one /64 are one client');
  assert.match(refused.headers.get('retry-after') || '', /^\d+$/);
  // The next /64, and an IPv4 client, are not affected.
  assert.equal((await as('2001:db8:7:2::1').get(`/login/start/${integ.id}`)).status, 303);
  assert.equal((await as('198.51.100.12').get(`/login/start/${integ.id}`)).status, 303);
});

test('X-Forwarded-For from the trusted proxy: the right-most untrusted entry is the client', async () => {
  // A client cannot escape its limit by prepending addresses: the proxy
  // appends the real one last.
  let refused = false;
  for (let i = 0; i < 30 && !refused; i++) {
    const r = await as(`10.9.${i}.1, 198.51.100.20`).get(`/login/start/${integ.id}`);
    refused = r.status === 429;
  }
  assert.ok(refused, 'spoofed left-hand entries do not make new clients');
});

// A login start with the given X-Forwarded-For header lines, raw.
function startWith(xffs) {
  const { port } = new URL(sys.webUrl);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: `/login/start/${integ.id}`, agent: false, headers: { 'x-forwarded-for': xffs } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end();
  });
}

test('X-Forwarded-For: every header line counts, however long the client made its part', async () => {
  // HAProxy adds its own line after the client's instead of joining them.
  let refused = false;
  for (let i = 0; i < 30 && !refused; i++) refused = (await startWith([`198.51.100.${100 + i}`, '198.51.100.21'])) === 429;
  assert.ok(refused, 'a header line of the client\'s own does not make it a new client');
  // nginx joins them: a client part of a kilobyte must not push the
  // proxy's entry out of what is read (it ended at byte 1,023, just after
  // the address the client chose).
  refused = false;
  for (let i = 0; i < 30 && !refused; i++) {
    const mine = `198.51.100.${150 + i}`;
    const part = `${'a'.repeat(1023 - mine.length - 2)}, ${mine}`;
    refused = (await startWith([`${part}, 198.51.100.22`])) === 429;
  }
  assert.ok(refused, 'a long client part does not make it a new client');
});

test('a browser can hold only a few unfinished logins', async () => {
  const c = new Client(sys.webUrl);
  let capped;
  for (let i = 0; i < 12 && !capped; i++) {
    // Distinct addresses: this is the per-browser cap, not the rate limit.
    const r = await as(`198.51.100.${100 + i}`, c).get(`/login/start/${integ.id}`);
    if (r.status === 429) capped = r;
    else assert.equal(r.status, 303, `start ${i}: ${r.status} ${text(r.text).slice(0, 200)}`);
  }
  assert.ok(capped, 'the 11th unfinished login of one browser is refused');
  assert.match(text(capped.text), /Too many sign-ins in progress/);
  assert.ok(capped.headers.get('retry-after'));
});

test('a few addresses starting logins without cookies cannot lock everyone out', async () => {
  // Each start without a cookie is a new "browser", so only the per-address
  // rate holds such a client back. Three addresses start 20 logins each on a
  // system that keeps 30 unfinished ones: the oldest give way, and the next
  // person still gets in.
  const own = await startPortico({
    name: 'edge-pending', autoApprove: 'jdoe',
    env: { PORTICO_TRUSTED_PROXIES: '127.0.0.1/32', PORTICO_PENDING_LOGINS_MAX: '30' },
  });
  try {
    const a = await setupAdmin(own);
    const i = await createIntegration(a, own.emulator, { name: 'Full' });
    const viaOwn = (ip) => {
      const c = new Client(own.webUrl);
      const get = c.get.bind(c);
      c.get = (p, o = {}) => get(p, { ...o, headers: { 'x-forwarded-for': ip, ...(o.headers || {}) } });
      return c;
    };
    for (const ip of ['203.0.113.1', '203.0.113.2', '203.0.113.3']) {
      for (let n = 0; n < 20; n++) {
        const r = await viaOwn(ip).get(`/login/start/${i.id}`);
        assert.equal(r.status, 303, `${ip} start ${n}: ${r.status} ${text(r.text).slice(0, 200)}`);
      }
    }
    const person = viaOwn('198.51.100.7');
    const start = await person.get(`/login/start/${i.id}`);
    assert.equal(start.status, 303, text(start.text).slice(0, 300));
    const done = await person.get(await authorizeAuto(person, start.location, 'jdoe'));
    assert.equal(done.status, 303, text(done.text).slice(0, 300));
    assert.ok(person.cookie('portico_session'));
    assert.match(own.allLogs(), /unfinished logins are at PORTICO_PENDING_LOGINS_MAX/);
  } finally {
    await own.stop();
  }
});

test('callbacks are limited per client; failures from one address are one audit row with a count', async () => {
  const starter = as('198.51.100.30');
  const start = await starter.get(`/login/start/${integ.id}`);
  const state = new URL(start.location).searchParams.get('state');
  let refused;
  let failed = 0;
  for (let i = 0; i < 30 && !refused; i++) {
    // Valid state, but no binding cookie: another browser.
    const r = await as('198.51.100.31').get(`/oauth/callback/${integ.id}?state=${state}&code=x`);
    if (r.status === 429) refused = r;
    else {
      assert.equal(r.status, 403, `callback ${i}: ${r.status}`);
      failed++;
    }
  }
  assert.ok(refused, 'one client cannot send 30 callbacks in a minute');
  assert.ok(refused.headers.get('retry-after'));
  const audit = await admin.get('/admin/audit');
  const rows = (audit.text.match(/<tr[^>]*>.*?<\/tr>/gs) || []).filter((r) => /login\.failed/.test(r) && /198\.51\.100\.31/.test(r));
  assert.equal(rows.length, 1, 'one row for the repeated failure');
  assert.match(text(rows[0]), new RegExp(`${failed} times`));
});

test('wrong setup tokens lock out only their own address; the owner\'s right token always works', async () => {
  // Many wrong tokens from many addresses (a flood behind the proxy)...
  for (let i = 0; i < 40; i++) {
    const c = as(`203.0.113.${10 + i}`);
    const f = await c.get('/admin');
    const r = await c.post('/admin/setup-token', { csrf: csrfFrom(f.text), token: `wrong-${i}-${'x'.repeat(30)}` });
    assert.equal(r.status, 403);
  }
  // ...and many from one, which is then refused, with Retry-After.
  const bad = as('203.0.113.99');
  const bf = await bad.get('/admin');
  let last;
  for (let i = 0; i < 8; i++) last = await bad.post('/admin/setup-token', { csrf: csrfFrom(bf.text), token: `wrong-${'y'.repeat(30)}` });
  assert.equal(last.status, 429);
  assert.ok(last.headers.get('retry-after'));
  // The owner, from an address that made no wrong attempt, gets in at once.
  const owner = as('192.0.2.200');
  const of = await owner.get('/admin');
  const ok = await owner.post('/admin/setup-token', { csrf: csrfFrom(of.text), token: sys.setupToken });
  assert.equal(ok.status, 303, text(ok.text).slice(0, 300));
});

test('request-derived values are quoted in log lines: a path cannot forge fields', async () => {
  const r = await fetch(`${sys.webUrl}/admin/integrations/1/x%22%20forged=%22yes`, {
    method: 'POST', headers: { origin: 'http://evil.example', 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=b',
  });
  assert.equal(r.status, 403);
  await r.text();
  // The log comes through a pipe, which this process may read after the answer.
  const find = () => sys.log('web').split('\n').find((l) => l.includes('refused a cross-site request') && l.includes('forged'));
  const line = await waitFor(find, { timeout: 3000, what: 'the refusal in the log' });
  assert.ok(line.includes('path="/admin/integrations/1/x\\" forged=\\"yes"'), line);
  assert.doesNotMatch(line, / forged="yes/);
});

test('an https public URL sends Strict-Transport-Security; operations stay off the public port', async () => {
  const own = await startPortico({ name: 'edge-https', noEmulator: true, publicUrl: 'https://portico.example.com' });
  try {
    const r = await fetch(`${own.webUrl}/healthz`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('strict-transport-security') || '', /^max-age=\d{7,}/);
    assert.equal((await fetch(`${own.webUrl}/metrics`)).status, 404);
    const ready = await fetch(`${own.webUrl}/readyz`);
    assert.doesNotMatch(await ready.text(), /registry|bitbucket|broker/);
    assert.equal((await fetch(`${own.opsUrl}/metrics`)).status, 200);
  } finally {
    await own.stop();
  }
  // Plain http: no HSTS (it would be ignored, and wrong behind no TLS).
  assert.equal((await fetch(`${sys.webUrl}/healthz`)).headers.get('strict-transport-security'), null);
});

// The TCP ports the process pid listens on, from /proc (its sockets' inodes
// matched against the kernel's table of listening sockets).
function listeningPorts(pid) {
  const inodes = new Set();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = readlinkSync(`/proc/${pid}/fd/${fd}`).match(/^socket:\[(\d+)\]$/);
      if (m) inodes.add(m[1]);
    } catch { /* closed meanwhile */ }
  }
  const ports = [];
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 9 && f[3] === '0A' && inodes.has(f[9])) ports.push(parseInt(f[1].split(':')[1], 16));
  }
  return ports;
}

test('a request straight to the web\'s private civetweb port, past the gate, is refused', async () => {
  // Every port the web was told to listen on (public, operations, bus) is
  // in its environment; the two left are civetweb's behind the public and
  // the operations gates, chosen by the kernel. The operations one serves
  // only what the operations port does.
  const told = new Set(Object.values(sys.procs.web.env).flatMap((v) => [...String(v).matchAll(/:(\d{2,5})\b/g)].map((m) => Number(m[1]))));
  const ports = listeningPorts(sys.procs.web.child.pid).filter((p) => !told.has(p));
  assert.equal(ports.length, 2, `two ports the web was not told of: ${ports}`);
  const answers = await Promise.all(ports.map(async (p) => {
    const r = await fetch(`http://127.0.0.1:${p}/login`);
    return [r.status, await r.text()];
  }));
  assert.deepEqual(answers.map(([st]) => st).sort(), [403, 404]);
  const backend = [ports[answers.findIndex(([st]) => st === 403)]];
  assert.equal(answers.find(([st]) => st === 403)[1], "use Portico's public address\n");
  // A header naming a client without the gate's secret token is no proof.
  const forged = await fetch(`http://127.0.0.1:${backend[0]}/account`, { headers: { 'x-portico-gate': 'guess 203.0.113.9' } });
  assert.equal(forged.status, 403);
  // Through the gate the same page is served.
  assert.equal((await fetch(`${sys.webUrl}/login`)).status, 200);
});

// One request written as given on a new connection; everything that comes
// back until the server closes it (waitMs at most).
function rawExchange(url, request, waitMs = 5000) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const chunks = [];
    const s = net.connect({ host: hostname, port: Number(port) }, () => s.write(request));
    const done = () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString('latin1')); };
    const timer = setTimeout(() => { s.destroy(); chunks.push(Buffer.from('<no close in time>')); done(); }, waitMs);
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => {});
    s.on('close', done);
  });
}

test('absolute-form targets and OPTIONS * are answered; a 405 names the allowed methods', async () => {
  // The authority of an absolute URI is not ours to trust: the page is
  // served from the path, and links still come from the public URL.
  const abs = await rawExchange(sys.webUrl, 'GET http://elsewhere.example:81/login?x=1 HTTP/1.1\r\nHost: elsewhere.example\r\nConnection: close\r\n\r\n');
  assert.match(abs, /^HTTP\/1\.1 200 /, abs.slice(0, 80));
  assert.match(abs, /<h1>Log in<\/h1>/);
  assert.match(abs, /Edge Bitbucket/);
  assert.doesNotMatch(abs, /elsewhere\.example/);
  // No path: the home page; a bare query keeps its "/".
  assert.match(await rawExchange(sys.webUrl, 'GET HTTPS://elsewhere.example HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 200 [^]*<title>Home /);
  assert.match(await rawExchange(sys.webUrl, 'GET http://h?next=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 200 [^]*<title>Home /);
  // A body after an absolute-form request line still reaches its handler.
  const post = await rawExchange(sys.webUrl, 'POST http://h/login HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc');
  assert.match(post, /^HTTP\/1\.1 405 [^]*\r\nAllow: GET, HEAD\r\n/);

  const options = await rawExchange(sys.webUrl, 'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.match(options, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(options, /\r\nAllow: GET, HEAD, POST\r\n/);
  assert.match(options, /\r\nContent-Length: 0\r\n/);
  assert.match(await rawExchange(sys.webUrl, 'GET * HTTP/1.1\r\nHost: x\r\n\r\n'), /^HTTP\/1\.1 400 /);

  // An answer says Connection: close when the connection ends after it.
  const head = (text) => text.slice(0, text.indexOf('\r\n\r\n'));
  assert.match(head(abs), /\r\nConnection: close(\r\n|$)/);
  assert.doesNotMatch(head(abs), /\r\nKeep-Alive:/);
  const old = await rawExchange(sys.webUrl, 'GET /login HTTP/1.0\r\nHost: x\r\n\r\n');
  assert.match(head(old), /^HTTP\/1\.1 200 [^]*\r\nConnection: close(\r\n|$)/);
  // A kept connection: the answer says how long it stays open idle, and
  // the server closes it then (5 s, give or take the gate's timer and a
  // loaded machine).
  const keptAt = Date.now();
  const kept = await rawExchange(sys.webUrl, 'GET /login HTTP/1.1\r\nHost: x\r\n\r\n', 8000);
  const keptFor = Date.now() - keptAt;
  assert.match(head(kept), /^HTTP\/1\.1 200 /);
  assert.doesNotMatch(head(kept), /\r\nConnection:/);
  assert.match(head(kept), /\r\nKeep-Alive: timeout=5(\r\n|$)/);
  assert.doesNotMatch(kept, /<no close in time>/);
  assert.ok(keptFor >= 4500 && keptFor < 6500, `closed after ${keptFor} ms`);
  // Connections fetch pooled while the kept one waited (here and in the
  // tests before) are reused, not failed: fetch leaves one before the
  // server's idle time.

  const del = await fetch(`${sys.webUrl}/login`, { method: 'DELETE' });
  assert.equal(del.status, 405);
  assert.equal(del.headers.get('allow'), 'GET, HEAD');
  const put = await fetch(`${sys.webUrl}/admin/integrations/${integ.id}`, { method: 'PUT' });
  assert.equal(put.status, 405);
  assert.equal(put.headers.get('allow'), 'GET, HEAD');
  // A path with routes for GET and POST.
  const both = await fetch(`${sys.webUrl}/admin/integrations/new`, { method: 'PATCH' });
  assert.equal(both.status, 405);
  assert.equal(both.headers.get('allow'), 'GET, HEAD, POST');
});

test('a request whose length a proxy could read otherwise is refused, and its connection closed', async () => {
  const answers = (text) => [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
  const hidden = 'GET /login HTTP/1.1\r\nHost: x\r\n\r\n';
  // A proxy that goes by Content-Length sees one request; civetweb, by the
  // chunks, would see a second one hidden in the body.
  for (const [what, headers, body, status] of [
    ['Content-Length and Transfer-Encoding', 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n', `0\r\n\r\n${hidden}`, 400],
    ['two Content-Lengths', 'Content-Length: 0\r\nContent-Length: 1\r\n', `x${hidden}`, 400],
    ['a Content-Length that is not a number', 'Content-Length: 1x\r\n', `x${hidden}`, 400],
    ['white space before the colon', 'Content-Length : 1\r\n', `x${hidden}`, 400],
    ['a Transfer-Encoding', 'Transfer-Encoding: chunked\r\n', `0\r\n\r\n${hidden}`, 411],
  ]) {
    // First on its connection: refused with a reason.
    const first = await rawExchange(sys.webUrl, `POST /login HTTP/1.1\r\nHost: x\r\n${headers}\r\n${body}`);
    assert.deepEqual(answers(first), [status], `${what}: ${first.slice(0, 120)}`);
    assert.match(first, /\r\nConnection: close\r\n/, what);
    assert.doesNotMatch(first, /<no close in 5 s>/, what);
    // After a good request: that one is answered; the bad one gets nothing
    // (an answer could be taken for the one before), and the connection ends.
    const later = await rawExchange(sys.webUrl, `${hidden}POST /login HTTP/1.1\r\nHost: x\r\n${headers}\r\n${body}`);
    assert.deepEqual(answers(later), [200], `${what}, second: ${later.slice(0, 120)}`);
    assert.doesNotMatch(later, /<no close in 5 s>/, what);
  }
  // Two requests whose lengths are clear are both answered on one connection,
  // also with the empty line some clients send after a body between them.
  const last = hidden.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n');
  assert.deepEqual(answers(await rawExchange(sys.webUrl, `${hidden}${last}`)), [200, 200]);
  assert.deepEqual(answers(await rawExchange(sys.webUrl, `\r\n${hidden}\r\n${last}`)), [200, 200]);
});

test('a body nobody reads ends its connection at once instead of being read to its end', async () => {
  // A body longer than any form, to a path that takes none: it is not held
  // by the gate, and civetweb would read and drop all of it.
  const got = await rawExchange(sys.webUrl, `POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n${'x'.repeat(1000)}`);
  assert.match(got, /^HTTP\/1\.1 405 [^]*\r\nConnection: close\r\n/);
  assert.doesNotMatch(got, /<no close in 5 s>/);
  // A body that was read keeps the connection for the next request.
  const kept = await rawExchange(sys.webUrl, 'GET /login HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n');
  assert.match(kept, /^HTTP\/1\.1 200 /);
  assert.doesNotMatch(kept.slice(0, kept.indexOf('\r\n\r\n')), /\r\nConnection:/);
});
