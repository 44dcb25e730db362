// The four services on loopback: readiness follows the brokers, a new broker
// takes work with nobody reconfigured, and every service stops cleanly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPortico, waitFor, sleep } from './harness.mjs';

let sys;
before(async () => { sys = await startPortico({ name: 'foundation', brokers: 1 }); });
after(async () => { if (sys) await sys.stop(); });

test('the public port answers only yes or no; metrics and the details are on the operations listener', async () => {
  const pub = await fetch(`${sys.webUrl}/readyz`);
  assert.equal(pub.status, 200);
  assert.equal(await pub.text(), 'ready\n');
  // The public port keeps the connection, and says nothing to the contrary.
  assert.equal(pub.headers.get('connection'), null);
  const m = await fetch(`${sys.webUrl}/metrics`);
  assert.equal(m.status, 404);
  assert.doesNotMatch(await m.text(), /portico_/);
  // The operations listener has nothing but health and metrics.
  assert.equal((await fetch(`${sys.opsUrl}/admin`)).status, 404);
  assert.equal((await fetch(`${sys.opsUrl}/login`)).status, 404);
  const ops = await fetch(`${sys.opsUrl}/healthz`);
  assert.equal(ops.status, 200);
  // That listener keeps nothing alive and says so: a client that reused the
  // closing connection would see its next request fail.
  assert.equal(ops.headers.get('connection'), 'close');
  assert.match(await (await fetch(`${sys.opsUrl}/metrics`)).text(), /portico_http_requests_total/);
});

test('readyz is 200 with every dependency and lists them', async () => {
  const r = await fetch(`${sys.opsUrl}/readyz`);
  const body = await r.text();
  assert.equal(r.status, 200, body);
  assert.match(body, /registry: ok/);
  assert.match(body, /bitbucket: ok/);
  assert.match(body, /broker: ok \(\d+ workers connected\)/);
  const h = await fetch(`${sys.webUrl}/healthz`);
  assert.equal(h.status, 200);
});

test('kill -9 the only broker: readyz turns non-200 within 5 s, a new broker restores it', async () => {
  const t0 = Date.now();
  await sys.kill('broker-1', 'SIGKILL');
  await waitFor(async () => (await sys.readyz()) === 503, { timeout: 5000, what: 'readyz 503' });
  const took = Date.now() - t0;
  assert.ok(took <= 5000, `readyz turned after ${took} ms`);
  const body = await (await fetch(`${sys.opsUrl}/readyz`)).text();
  assert.match(body, /broker: no workers connected/);
  await sys.startBroker();
  await sys.ready(10000);
});

test('a second broker process takes work without anyone being reconfigured', async () => {
  await sys.startBroker();
  const metric = async () => {
    const text = await (await fetch(`${sys.opsUrl}/metrics`)).text();
    const m = text.match(/^portico_broker_workers_connected (\d+)/m);
    return m ? Number(m[1]) : 0;
  };
  await waitFor(async () => (await metric()) >= 16, { timeout: 10000, what: 'two brokers of 8 workers' });
  const text = await (await fetch(`${sys.opsUrl}/metrics`)).text();
  assert.match(text, /portico_http_requests_total\{route="readyz",status="200"\}/);
  assert.match(text, /portico_bus_call_seconds_bucket\{service="registry",method="ping"/);
});

test('metrics and readyz say when the registry is gone, and recover when it is back', async () => {
  await sys.kill('registry', 'SIGKILL');
  await waitFor(async () => (await sys.readyz()) === 503, { timeout: 5000, what: 'readyz 503 without registry' });
  const body = await (await fetch(`${sys.opsUrl}/readyz`)).text();
  assert.match(body, /registry: (?!ok)/);
  // Gone for a while, it is down, not restarting: a page that needs it is
  // answered with an error in about a second and a half, not after the
  // bus timeout (5 s), so people are not kept waiting nor threads held.
  await sleep(6000);
  for (let i = 0; i < 2; i++) {
    const t0 = Date.now();
    const r = await fetch(`${sys.webUrl}/login`);
    const took = Date.now() - t0;
    const page = await r.text();
    assert.match(page, /role="alert">Portico cannot list its Bitbucket integrations right now/);
    assert.ok(took < 4000, `the page took ${took} ms`);
  }
  await sys.restart('registry');
  await sys.ready(15000);
});

test('SIGTERM stops every service with exit 0 within 5 s', async () => {
  for (const name of Object.keys(sys.procs)) {
    const p = sys.procs[name];
    if (!p.alive) continue;
    const t0 = Date.now();
    const { code, signal } = await p.kill('SIGTERM');
    assert.equal(signal, null, `${name} died of ${signal}`);
    assert.equal(code, 0, `${name} exited ${code}`);
    assert.ok(Date.now() - t0 < 5000, `${name} took ${Date.now() - t0} ms to stop`);
  }
});
