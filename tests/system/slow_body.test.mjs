// Bodies that trickle (#12): connections that send their headers and then
// their body a byte at a time, on a new connection or after a first
// request on a kept one, take none of civetweb's threads. The gate holds
// each request until it is whole; one that is not whole in time is closed.
// Loopback only (three source addresses in 127/8), bounded in count and time.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import { startPortico, sleep, waitFor } from './harness.mjs';

const THREADS = 4;
const TIMEOUT_MS = 3000;
let sys;
let port;

before(async () => {
  sys = await startPortico({ name: 'slow-body', env: { PORTICO_WEB_THREADS: String(THREADS), PORTICO_HEADER_TIMEOUT_MS: String(TIMEOUT_MS) } });
  port = Number(new URL(sys.webUrl).port);
});
after(async () => {
  if (sys) await sys.stop();
});

// A form whose 1,000-byte body comes a byte every 200 ms, after `first`
// (a whole request, answered before the POST starts) when given.
function trickler(localAddress, first) {
  const s = net.connect({ host: '127.0.0.1', port, localAddress });
  const state = { closedAt: 0, answeredAt: 0, got: '', timer: null };
  const t0 = Date.now();
  s.on('error', () => {});
  s.on('close', () => { state.closedAt = Date.now() - t0; clearInterval(state.timer); });
  const post = () => {
    // The setup token form reads its body before anything else.
    s.write(`POST /admin/setup-token HTTP/1.1\r\nHost: x\r\nOrigin: ${sys.webUrl}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n`);
    state.timer = setInterval(() => { if (!s.destroyed) s.write('x'); }, 200);
  };
  s.on('data', (d) => {
    const before = state.got;
    state.got += d.toString('latin1');
    if (!before) state.answeredAt = Date.now() - t0;
    if (first && !before && !state.timer) post();
  });
  s.on('connect', () => (first ? s.write(first) : post()));
  state.sock = s;
  return state;
}

function healthz(localAddress) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const req = http.request({ host: '127.0.0.1', port, path: '/healthz', localAddress, agent: false, timeout: 3000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, ms: Date.now() - t0 }));
    });
    req.on('error', () => resolve({ status: 0, ms: Date.now() - t0 }));
    req.on('timeout', () => { req.destroy(); resolve({ status: 0, ms: Date.now() - t0 }); });
    req.end();
  });
}

test(`bodies a byte at a time from ${THREADS * 3} connections leave civetweb's ${THREADS} threads free`, async () => {
  const t0 = Date.now();
  const fresh = Array.from({ length: THREADS * 2 }, () => trickler('127.0.0.4'));
  const kept = Array.from({ length: THREADS }, () => trickler('127.0.0.5', 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
  try {
    // The kept connections' first answers come; the gate gives their
    // threads back once no answer is due (the held form is not sent).
    await waitFor(() => kept.every((k) => k.answeredAt), { timeout: 5000, what: 'the kept connections\' first answers' });
    for (const k of kept) assert.match(k.got, /^HTTP\/1\.1 200 /);
    await sleep(Math.max(0, t0 + Math.max(...kept.map((k) => k.answeredAt)) + 500 - Date.now()));
    const probes = [];
    for (let i = 0; i < 5; i++) {
      probes.push(await healthz('127.0.0.6'));
      await sleep(100);
    }
    for (const p of probes) assert.equal(p.status, 200, JSON.stringify(probes));
    assert.ok(Math.max(...probes.map((p) => p.ms)) < 1000, JSON.stringify(probes));
    // Every trickler is closed with a 408 within the deadline (and a
    // second): the kept ones too, since no answer is due before it.
    await sleep(Math.max(0, t0 + TIMEOUT_MS + 1000 - Date.now()));
    for (const f of fresh) {
      assert.ok(f.closedAt > 0 && f.closedAt <= TIMEOUT_MS + 1000, `fresh closed at ${f.closedAt}`);
      assert.match(f.got, /^HTTP\/1\.1 408 /);
    }
    await sleep(Math.max(0, t0 + Math.max(...kept.map((k) => k.answeredAt)) + TIMEOUT_MS + 1000 - Date.now()));
    for (const k of kept) {
      assert.ok(k.closedAt > 0 && k.closedAt <= k.answeredAt + TIMEOUT_MS + 1000, `kept: answered at ${k.answeredAt}, closed at ${k.closedAt}`);
      assert.match(k.got, /^HTTP\/1\.1 200 [^]*HTTP\/1\.1 408 /);
      assert.doesNotMatch(k.got, /HTTP\/1\.1 [^]*HTTP\/1\.1 [^]*HTTP\/1\.1/, 'the held POST was passed on');
    }
  } finally {
    for (const t of [...fresh, ...kept]) t.sock.destroy();
  }
});

// A head that ends "\n\r\n" after a bare line feed: civetweb reads on past
// it for an end of its own ("\n\n" or "\r\n\r\n"), so the gate must too.
// When the gate took it for whole, each such connection held one of
// civetweb's threads until civetweb's own timeout, past the gate's.
test(`heads civetweb would not take as ended, from ${THREADS * 2} connections, leave its threads free and get 408`, async () => {
  const t0 = Date.now();
  const odd = Array.from({ length: THREADS * 2 }, () => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.7' });
    const state = { sock: s, got: '', closedAt: 0 };
    s.on('error', () => {});
    s.on('data', (d) => { state.got += d.toString('latin1'); });
    s.on('close', () => { state.closedAt = Date.now() - t0; });
    s.on('connect', () => s.write('GET /healthz HTTP/1.1\r\nHost: x\n\r\n'));
    return state;
  });
  try {
    await sleep(500);
    const probes = [];
    for (let i = 0; i < 5; i++) {
      probes.push(await healthz('127.0.0.8'));
      await sleep(100);
    }
    for (const p of probes) assert.equal(p.status, 200, JSON.stringify(probes));
    assert.ok(Math.max(...probes.map((p) => p.ms)) < 1000, JSON.stringify(probes));
    await sleep(Math.max(0, t0 + TIMEOUT_MS + 1000 - Date.now()));
    for (const o of odd) {
      assert.ok(o.closedAt > 0 && o.closedAt <= TIMEOUT_MS + 1000, `closed at ${o.closedAt}`);
      assert.match(o.got, /^HTTP\/1\.1 408 /);
    }
  } finally {
    for (const o of odd) o.sock.destroy();
  }
});
