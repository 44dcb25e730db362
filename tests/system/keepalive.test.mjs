// Kept connections that wait between requests do not hold civetweb's
// threads: once no answer is due the gate gives civetweb's side back, and
// the client's connection stays open for its next request. Loopback only
// (source addresses in 127/8), bounded in count and time.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startPortico, sleep, waitFor } from './harness.mjs';

const THREADS = 4;
let sys;
let port;

before(async () => {
  sys = await startPortico({ name: 'keepalive', env: { PORTICO_WEB_THREADS: String(THREADS), PORTICO_HEADER_TIMEOUT_MS: '3000' } });
  port = Number(new URL(sys.webUrl).port);
});
after(async () => {
  if (sys) await sys.stop();
});

// A raw client connection: what it wrote, what came back, when it closed.
function client(localAddress, toPort = port) {
  const s = net.connect({ host: '127.0.0.1', port: toPort, localAddress });
  const c = { sock: s, got: '', closedAt: 0, lastDataAt: 0, t0: Date.now() };
  s.on('error', () => {});
  s.on('data', (d) => { c.got += d.toString('latin1'); c.lastDataAt = Date.now(); });
  s.on('close', () => { c.closedAt = Date.now(); });
  c.ready = new Promise((r) => s.on('connect', r));
  return c;
}

// Complete answers in what a connection received (bodies by Content-Length,
// none after a HEAD when `heads` says which ones were).
function answers(got, heads = []) {
  const out = [];
  let rest = got;
  for (let i = 0; ; i++) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return out;
    const head = rest.slice(0, end);
    const len = heads[i] ? 0 : Number((/\r\ncontent-length: *(\d+)/i.exec(head) || [0, 0])[1]);
    if (rest.length < end + 4 + len) return out;
    out.push({ status: Number(head.slice(9, 12)), head, body: rest.slice(end + 4, end + 4 + len) });
    rest = rest.slice(end + 4 + len);
  }
}

async function released() {
  const text = await (await fetch(`${sys.opsUrl}/metrics`)).text();
  const m = /^portico_http_gate_backend_released_total (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

const GET = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';

test(`${THREADS * 2} kept connections waiting between requests leave civetweb's ${THREADS} threads free`, async () => {
  const before = await released();
  const kept = Array.from({ length: THREADS * 2 }, () => client('127.0.0.7'));
  try {
    await Promise.all(kept.map((k) => k.ready));
    const sentAt = Date.now();
    for (const k of kept) k.sock.write(GET);
    await waitFor(() => kept.every((k) => answers(k.got).length === 1), { timeout: 10000, what: 'the first answers' });
    const answeredAt = Date.now();
    // Half of them waited for a thread that one of the others held: about
    // 200 ms, not the 5 s civetweb keeps an idle connection.
    assert.ok(answeredAt - sentAt < 3000, `the first answers took ${answeredAt - sentAt} ms`);
    for (const k of kept) assert.equal(answers(k.got)[0].status, 200);
    // civetweb's sides are given back after 200 ms without an answer due.
    await waitFor(async () => (await released()) >= before + kept.length, { timeout: 3000, what: 'civetweb\'s connections given back' });
    // A new client is served at once, long before the 5 s for which
    // civetweb would have kept a thread on each idle connection.
    const fresh = client('127.0.0.8');
    await fresh.ready;
    fresh.sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await waitFor(() => answers(fresh.got).length === 1, { timeout: 5000, what: 'the fresh answer' });
    assert.equal(answers(fresh.got)[0].status, 200);
    assert.ok(Date.now() - answeredAt < 4000, `fresh answer ${Date.now() - answeredAt} ms after the kept ones`);
    // The kept connections are still open, and their next requests (one of
    // them two at once, a HEAD first) are answered on them.
    for (const k of kept) assert.equal(k.closedAt, 0, 'a kept connection was closed');
    kept[0].sock.write(`HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n${GET}`);
    for (const k of kept.slice(1)) k.sock.write(GET);
    await waitFor(() => answers(kept[0].got, [false, true, false]).length === 3 && kept.slice(1).every((k) => answers(k.got).length === 2),
      { timeout: 10000, what: 'the second answers' });
    const first = answers(kept[0].got, [false, true, false]);
    assert.deepEqual(first.map((a) => a.status), [200, 200, 200]);
    assert.equal(first[1].body, '');
    assert.ok(/\r\ncontent-length: *[1-9]/i.test(first[1].head), 'the HEAD answer gives the length of the GET');
    for (const k of kept.slice(1)) assert.equal(answers(k.got)[1].status, 200);
    // Then, with nothing sent for the keep-alive time (5 s) after its last
    // answer, each is closed.
    await waitFor(() => kept.every((k) => k.closedAt), { timeout: 8000, what: 'the idle connections closed' });
    for (const k of kept) assert.ok(k.closedAt - k.lastDataAt >= 4500, `closed ${k.closedAt - k.lastDataAt} ms after its last answer`);
  } finally {
    for (const k of kept) k.sock.destroy();
  }
});

test('a later request refused with no answer due gets its answer', async () => {
  const late = client('127.0.0.9');
  const bad = client('127.0.0.9');
  try {
    await Promise.all([late.ready, bad.ready]);
    late.sock.write(GET);
    bad.sock.write(GET);
    await waitFor(() => answers(late.got).length === 1 && answers(bad.got).length === 1, { timeout: 5000, what: 'the first answers' });
    // Trickled after the first answer: not whole within 3 s of its first byte.
    late.sock.write('GET /healthz HTTP/1.1\r\n');
    // Two lengths: refused, and the connection closed after the answer.
    bad.sock.write('POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy');
    await waitFor(() => bad.closedAt, { timeout: 5000, what: 'the refused connection closed' });
    assert.deepEqual(answers(bad.got).map((a) => a.status), [200, 400]);
    await waitFor(() => late.closedAt, { timeout: 6000, what: 'the late connection closed' });
    assert.deepEqual(answers(late.got).map((a) => a.status), [200, 408]);
  } finally {
    late.sock.destroy();
    bad.sock.destroy();
  }
});

test('later requests on a kept connection: absolute targets and OPTIONS * are answered too', async () => {
  const k = client('127.0.0.10');
  try {
    await k.ready;
    k.sock.write(GET);
    await waitFor(() => answers(k.got).length === 1, { timeout: 5000, what: 'the first answer' });
    // Right after the answer (civetweb's side still open) and after a pause
    // (given back): both reach their handler.
    k.sock.write('GET http://elsewhere.example/healthz HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n');
    await waitFor(() => answers(k.got).length === 2, { timeout: 5000, what: 'the second answer' });
    await sleep(500);
    k.sock.write('GET https://elsewhere.example/healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => answers(k.got).length === 3, { timeout: 5000, what: 'the third answer' });
    k.sock.write('OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => k.closedAt, { timeout: 5000, what: 'the connection closed' });
    const all = answers(k.got);
    assert.deepEqual(all.map((a) => a.status), [200, 200, 200, 200]);
    assert.match(all[3].head, /\r\nAllow: GET, HEAD, POST\r\n/);
  } finally {
    k.sock.destroy();
  }
});

// Heads civetweb would read otherwise than the gate are refused by the
// gate: spaces before the method (civetweb skips them and then reads on
// into what its buffer last held, another connection's request), and a
// header past the ones civetweb reads (a Content-Length there frames a
// body the gate holds as a request civetweb runs).
test('a request line with spaces before it, a header civetweb stops at, or more headers than it reads, is refused', async () => {
  const hidden = 'GET /nonexistent-smuggled HTTP/1.1\r\nHost: y\r\n\r\n';
  const many = Array.from({ length: 70 }, (_, i) => `X-F${i}: v\r\n`).join('');
  const cases = [
    [' GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    [`GET /healthz HTTP/1.1\r\nHost: x\r\n${many}Content-Length: ${hidden.length}\r\n\r\n${hidden}`, 431],
    // civetweb stops reading headers at a line that starts with a byte
    // over 126 or a CR.
    [`GET /healthz HTTP/1.1\r\nHost: x\r\n\x80: z\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`, 400],
    [`GET /healthz HTTP/1.1\r\nHost: x\r\n\rX: z\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`, 400],
  ];
  for (const [req, status] of cases) {
    const k = client('127.0.0.12');
    try {
      await k.ready;
      k.sock.write(Buffer.from(req, 'latin1'));
      await waitFor(() => k.closedAt, { timeout: 5000, what: `the connection closed after ${status}` });
      assert.deepEqual(answers(k.got).map((a) => a.status), [status], k.got.slice(0, 200));
    } finally {
      k.sock.destroy();
    }
  }
  // After an answer due, the same spaces end the connection after it,
  // and nothing after them reaches civetweb.
  const k = client('127.0.0.12');
  try {
    await k.ready;
    k.sock.write(`${GET}${' '.repeat(40)}\n\n${hidden}`);
    await waitFor(() => k.closedAt, { timeout: 5000, what: 'the connection closed' });
    assert.deepEqual(answers(k.got).map((a) => a.status), [200]);
  } finally {
    k.sock.destroy();
  }
});

// The gate follows at most 64 answers due on a connection. Past that it
// used to stop following, and so never gave civetweb's thread back; now
// the next request waits in the gate until an answer has come.
test(`${THREADS} connections pipelining 100 requests each: all answered in order, then civetweb's threads given back`, async () => {
  const before = await released();
  const N = 100;
  const pipes = Array.from({ length: THREADS }, () => client('127.0.0.13'));
  try {
    await Promise.all(pipes.map((k) => k.ready));
    for (const k of pipes) k.sock.write(`${GET.repeat(N - 1)}HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n`);
    const heads = Array.from({ length: N }, (_, i) => i === N - 1);
    await waitFor(() => pipes.every((k) => answers(k.got, heads).length === N), { timeout: 10000, what: 'every answer' });
    for (const k of pipes) {
      const all = answers(k.got, heads);
      assert.ok(all.every((a) => a.status === 200), 'all answered 200');
      assert.equal(all[N - 1].body, '', 'the last, a HEAD, has no body');
      assert.equal(k.got.length, all.reduce((n, a) => n + a.head.length + 4 + a.body.length, 0), 'no bytes beyond the answers');
    }
    await waitFor(async () => (await released()) >= before + THREADS, { timeout: 2000, what: 'civetweb\'s connections given back' });
    for (const k of pipes) assert.equal(k.closedAt, 0, 'a kept connection was closed');
  } finally {
    for (const k of pipes) k.sock.destroy();
  }
});

async function sendTimeouts() {
  const text = await (await fetch(`${sys.opsUrl}/metrics`)).text();
  const m = /^portico_http_gate_refused_total\{reason="send_timeout"\} (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

test('a client that takes none of its answers is closed after the timeout', async () => {
  const before = await sendTimeouts();
  const k = client('127.0.0.11');
  try {
    await k.ready;
    k.sock.pause(); // reads nothing: the socket buffers fill, then the gate's
    const css = 'GET /static/portico.css HTTP/1.1\r\nHost: x\r\n\r\n';
    for (let i = 0; i < 10; i++) k.sock.write(css.repeat(400));
    // 4,000 answers of several KB: more than the buffers of both ends hold.
    await waitFor(async () => (await sendTimeouts()) > before, { timeout: 20000, what: 'the stalled client closed' });
    // civetweb goes on serving others.
    const res = await fetch(`${sys.webUrl}/healthz`);
    assert.equal(res.status, 200);
  } finally {
    k.sock.destroy();
  }
});

// A system of its own with other caps, and raw connections to it that are
// all closed when it stops.
async function capped(name, env) {
  const own = await startPortico({ name, noEmulator: true, env });
  const ownPort = Number(new URL(own.webUrl).port);
  const conns = [];
  return {
    // A connection from `from`, and its first answer when `ask`.
    async open(from, ask = true) {
      const k = client(from, ownPort);
      conns.push(k);
      await k.ready;
      if (ask) {
        k.sock.write(GET);
        await waitFor(() => answers(k.got).length === 1, { timeout: 5000, what: `an answer to ${from}` });
      }
      return k;
    },
    async closedIdle() {
      const text = await (await fetch(`${own.opsUrl}/metrics`)).text();
      return Number((/^portico_http_gate_idle_closed_total (\d+)/m.exec(text) || [0, 0])[1]);
    },
    // Every connection given begins a request: none of them is idle.
    async busy(ks) {
      for (const k of ks) k.sock.write('GET /healthz HTTP/1.1\r\n');
      await sleep(200);
    },
    // A new connection from `from` is refused with 503.
    async refused(from) {
      const k = await this.open(from, false);
      await waitFor(() => k.closedAt, { timeout: 5000, what: 'the refused connection closed' });
      assert.match(k.got, /^HTTP\/1\.1 503 [^]*Too many connections/);
    },
    async stop() {
      for (const k of conns) k.sock.destroy();
      await own.stop();
    },
  };
}

const closed = (ks) => ks.filter((k) => k.closedAt);

test('a client at its connection cap: its longest idle kept connection makes room; busy ones do not', async () => {
  const CAP = 3;
  const sys2 = await capped('keepalive-cap', { PORTICO_MAX_CONNECTIONS_PER_CLIENT: String(CAP) });
  try {
    // CAP kept connections, answered one after the other, then idle.
    const kept = [];
    for (let i = 0; i < CAP; i++) {
      kept.push(await sys2.open('127.0.0.12'));
      await sleep(50);
    }
    // One more: served, and the one idle longest is closed for it.
    const more = await sys2.open('127.0.0.12');
    assert.equal(answers(more.got)[0].status, 200);
    await waitFor(() => kept[0].closedAt, { timeout: 5000, what: 'the oldest closed' });
    assert.deepEqual(closed(kept), [kept[0]], 'only the one idle longest is closed');
    assert.equal(await sys2.closedIdle(), 1);
    // Now every connection of the client is busy: one more is refused,
    // and none of them is closed.
    const open = [kept[1], kept[2], more];
    await sys2.busy(open);
    await sys2.refused('127.0.0.12');
    assert.deepEqual(closed(open), [], 'a busy connection was closed');
    assert.equal(await sys2.closedIdle(), 1);
    // Their requests, finished, are answered on them.
    for (const k of open) k.sock.write('Host: x\r\n\r\n');
    await waitFor(() => open.every((k) => answers(k.got).length === 2), { timeout: 5000, what: 'the finished requests answered' });
  } finally {
    await sys2.stop();
  }
});

test('at the total connection cap, the longest idle kept connection makes room, the client\'s own first', async () => {
  const TOTAL = 16; // the least PORTICO_MAX_CONNECTIONS takes
  const sys2 = await capped('keepalive-total', { PORTICO_MAX_CONNECTIONS: String(TOTAL), PORTICO_MAX_CONNECTIONS_PER_CLIENT: '4' });
  try {
    // The harness's own connections (its readiness checks) close first.
    await sleep(5500);
    // TOTAL kept connections, four from each of four addresses, answered
    // in turn, idle: both caps are reached.
    const kept = [];
    for (let i = 0; i < TOTAL; i++) kept.push(await sys2.open(`127.0.0.${20 + (i % 4)}`));
    // A new client: served, and the connection idle longest, another
    // client's, is closed for it.
    const more = await sys2.open('127.0.0.24');
    assert.equal(answers(more.got)[0].status, 200);
    await waitFor(() => kept[0].closedAt, { timeout: 5000, what: 'the oldest closed' });
    assert.deepEqual(closed(kept), [kept[0]], 'only the one idle longest is closed');
    // A client at its own cap too (127.0.0.22): its own oldest goes, not
    // the oldest of all (kept[1], 127.0.0.21's).
    const mine = await sys2.open('127.0.0.22');
    assert.equal(answers(mine.got)[0].status, 200);
    await waitFor(() => kept[2].closedAt, { timeout: 5000, what: 'its own oldest closed' });
    assert.deepEqual(closed(kept), [kept[0], kept[2]], 'one connection closed for it, its own');
    assert.equal(await sys2.closedIdle(), 2);
    // Every connection busy: the next one is refused, none is closed.
    const open = [...kept.filter((k) => !k.closedAt), more, mine];
    assert.equal(open.length, TOTAL);
    await sys2.busy(open);
    await sys2.refused('127.0.0.25');
    assert.deepEqual(closed(open), [], 'a busy connection was closed');
  } finally {
    await sys2.stop();
  }
});
