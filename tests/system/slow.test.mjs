// Slow and many connections (#12): while one address holds 1,000
// connections that trickle their headers and another floods /login/start,
// a third client still gets /healthz in under a second and completes a
// login. Loopback only (three source addresses in 127/8), bounded in count
// and time.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import { startPortico, sleep } from './harness.mjs';
import { Client } from './client.mjs';
import { setupAdmin, createIntegration, loginAuto } from './login_lib.mjs';

const HEADER_TIMEOUT_MS = 4000;
let sys;
let integ;

before(async () => {
  sys = await startPortico({ name: 'slow', autoApprove: 'jdoe', env: { PORTICO_HEADER_TIMEOUT_MS: String(HEADER_TIMEOUT_MS) } });
  const admin = await setupAdmin(sys);
  integ = await createIntegration(admin, sys.emulator, { name: 'Slow Bitbucket' });
});
after(async () => {
  if (sys) await sys.stop();
});

// 1,000 connections from 127.0.0.3 sending one header line every 2 s.
function slowloris(port, count) {
  const socks = [];
  let closedEarly = 0;
  for (let i = 0; i < count; i++) {
    const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.3' });
    s.on('error', () => {});
    s.on('close', () => { closedEarly++; });
    s.resume(); // read, so that a refusal (and its FIN) is seen
    s.on('connect', () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n'));
    socks.push(s);
  }
  const timer = setInterval(() => { for (const s of socks) if (!s.destroyed) s.write('X-Slow: 1\r\n'); }, 2000);
  return {
    closed: () => closedEarly,
    stop: () => { clearInterval(timer); for (const s of socks) s.destroy(); },
  };
}

// GET from another source address, without keep-alive (port: the web's
// public one unless given).
function getFrom(localAddress, path, port = new URL(sys.webUrl).port) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path, localAddress, agent: false, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', (e) => { if (process.env.SLOW_DEBUG) console.log(localAddress, path, e.code); resolve(0); });
    req.on('timeout', () => { req.destroy(); resolve(0); });
    req.end();
  });
}

test('1,000 trickling connections and a login flood do not starve a third client', async () => {
  const port = Number(new URL(sys.webUrl).port);
  const loris = slowloris(port, 1000);
  let flooding = true;
  const flood = (async () => {
    let n = 0;
    const statuses = {};
    while (flooding && n < 2000) {
      const batch = await Promise.all(Array.from({ length: 20 }, () => getFrom('127.0.0.4', `/login/start/${integ.id}`)));
      for (const s of batch) statuses[s] = (statuses[s] || 0) + 1;
      n += batch.length;
    }
    return statuses;
  })();
  try {
    await sleep(1500);
    // The third client: /healthz within 2 s, every time (starved, it
    // would wait for the 5 s of a request timeout; the measure includes
    // this process's own event loop, busy with the flood).
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      const status = await getFrom('127.0.0.1', '/healthz');
      const ms = Date.now() - t0;
      assert.equal(status, 200);
      assert.ok(ms < 2000, `/healthz took ${ms} ms`);
      await sleep(200);
    }
    // ...and a whole login.
    const c = new Client(sys.webUrl);
    const t0 = Date.now();
    const done = await loginAuto(c, integ.id);
    assert.equal(done.status, 303, `callback: ${done.status}`);
    assert.ok(c.cookie('portico_session'), 'signed in');
    assert.ok(Date.now() - t0 < 5000, `the login took ${Date.now() - t0} ms`);
    // One address holds only a few connections: the rest were refused at once.
    assert.ok(loris.closed() >= 900, `connections refused beyond the per-client cap: ${loris.closed()}`);
    // The ones it holds are dropped when their headers take too long.
    await sleep(HEADER_TIMEOUT_MS + 1000);
    assert.equal(loris.closed(), 1000, 'every trickling connection was closed by the header deadline');
  } finally {
    flooding = false;
    loris.stop();
  }
  const statuses = await flood;
  assert.ok(statuses[429] > 0, `the flood was limited: ${JSON.stringify(statuses)}`);
});

// The operations port (PORTICO_OPS_ADDR) and a service's health port
// (PORTICO_HEALTH_ADDR) had two to four civetweb threads and nothing in
// front: 20 connections trickling headers failed every health check, and an
// orchestrator restarts a service whose checks fail. Each now has a gate.
test('trickling connections on the operations and health ports do not stop their checks', async () => {
  const ops = Number(new URL(sys.opsUrl).port);
  const health = Number(new URL(sys.regHealthUrl).port);
  const loris = [slowloris(ops, 60), slowloris(health, 60)];
  try {
    await sleep(1000);
    for (let i = 0; i < 3; i++) {
      for (const [port, path] of [[ops, '/readyz'], [ops, '/metrics'], [health, '/readyz'], [health, '/healthz']]) {
        const t0 = Date.now();
        const status = await getFrom('127.0.0.1', path, port);
        assert.equal(status, 200, `${port}${path}`);
        assert.ok(Date.now() - t0 < 2000, `${port}${path} took ${Date.now() - t0} ms`);
      }
    }
    // One address holds 16 connections on each; the rest were refused at once.
    assert.equal(loris[0].closed() + loris[1].closed(), 2 * (60 - 16));
    const text = await (await fetch(`${sys.opsUrl}/metrics`)).text();
    assert.match(text, /^portico_http_gate_refused_total\{listener="ops",reason="per_client"\} 44$/m);
  } finally {
    for (const l of loris) l.stop();
  }
});
