// What held requests may cost the web. The gate holds each request until it
// is whole; a request may be 16 KiB of head and 64 KiB of body, and clients
// from many addresses (an IPv6 /48 holds 65,536 /64s) can each hold
// PORTICO_MAX_CONNECTIONS_PER_CLIENT such connections half sent. Every one
// of them once cost its whole buffer plus a 32 KiB answer buffer for as long
// as it trickled: PORTICO_MAX_CONNECTIONS (4,096) of them came to some
// 400 MB, near compose's memory limit for the web. Now a connection holds
// 8 KiB until it needs more, the answer buffer exists only while civetweb
// answers, and what held requests take beyond their first 8 KiB is capped
// (16 KiB a connection on average, of PORTICO_MAX_CONNECTIONS): a request
// that would go past it gets 503 at once. Loopback only (twelve source
// addresses in 127/8), bounded in count and time.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { startPortico, sleep, SANITIZED } from './harness.mjs';

const MAX_CONNS = 400;
let sys;
let port;

before(async () => {
  sys = await startPortico({
    name: 'gate-memory',
    env: { PORTICO_MAX_CONNECTIONS: String(MAX_CONNS), PORTICO_HEADER_TIMEOUT_MS: '20000' },
  });
  port = Number(new URL(sys.webUrl).port);
});
after(async () => {
  if (sys) await sys.stop();
});

const rssKiB = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

// A POST with a 12 KiB head announcing 60,000 bytes of body, of which
// 50,000 come at once and the rest never.
function holder(localAddress) {
  const s = net.connect({ host: '127.0.0.1', port, localAddress });
  const state = { got: '', closed: false };
  s.on('error', () => {});
  s.on('data', (d) => { state.got += d.toString('latin1'); });
  s.on('close', () => { state.closed = true; });
  s.on('connect', () => {
    s.write(`POST /logout HTTP/1.1\r\nHost: x\r\nX-Pad: ${'p'.repeat(12000)}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 60000\r\n\r\n`);
    s.write('x'.repeat(50000));
  });
  state.sock = s;
  return state;
}

test('connections holding big half-sent requests cost the web a bounded amount of memory', { timeout: 60000 }, async (t) => {
  const pid = sys.procs.web.child.pid;
  // Warm: a few whole requests, so civetweb's threads and the gate exist.
  for (let i = 0; i < 5; i++) assert.equal((await fetch(`${sys.webUrl}/healthz`)).status, 200);
  const before = rssKiB(pid);
  const held = [];
  for (let a = 1; a <= 12; a++) for (let i = 0; i < 32; i++) if (held.length < MAX_CONNS - 20) held.push(holder(`127.0.2.${a}`));
  try {
    await sleep(2500);
    // On a loaded machine the refusals may still be arriving: wait until
    // their count holds for half a second.
    const countRefused = () => held.filter((h) => h.got.startsWith('HTTP/1.1 503')).length;
    let refused = countRefused();
    for (let i = 0; i < 30; i++) {
      await sleep(500);
      const now = countRefused();
      if (now === refused && now > 200) break;
      refused = now;
    }
    const grown = rssKiB(pid) - before;
    const open = held.filter((h) => !h.closed).length;
    t.diagnostic(`the web grew by ${grown} KiB; ${refused} refused, ${open} held`);
    // 380 × (60 KiB + 32 KiB) before; now 380 × 8 KiB and a 6.4 MB cap.
    if (!SANITIZED) assert.ok(grown < 16 * 1024, `the web grew by ${grown} KiB holding ${open} requests`);
    // The cap holds about 117 of them whole; the rest were refused at once.
    assert.ok(refused > 200 && refused < 300, `refused: ${refused}, open: ${open}`);
    // Someone else is still served.
    assert.equal((await fetch(`${sys.webUrl}/healthz`)).status, 200);
    const metrics = await (await fetch(`${sys.opsUrl}/metrics`)).text();
    assert.match(metrics, new RegExp(`^portico_http_gate_refused_total\\{reason="buffers"\\} ${refused}$`, 'm'));
  } finally {
    for (const h of held) h.sock.destroy();
  }
});
