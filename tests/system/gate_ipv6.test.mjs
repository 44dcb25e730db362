// The gate's per-client connection cap counts an IPv6 client by its /64:
// a host given a whole /64 cannot take a new address for every connection.
// Loopback has one IPv6 address (::1), so the test runs again inside a
// network namespace of its own (unshare -n, as root) whose loopback holds
// addresses of two /64s; where namespaces are not allowed (an unprivileged
// container) it is skipped and says why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startPortico, waitFor, sleep, IN_NETNS, netnsTest } from './harness.mjs';

const NET_A = '2001:db8:7:1::';
const NET_B = '2001:db8:7:2::';
const CAP = 3;
const ADDRS = [...['1', 'a', 'b', 'c', 'd'].map((h) => NET_A + h), NET_B + 'a'];

function client(localAddress, port) {
  const s = net.connect({ host: '::1', port, localAddress });
  const c = { sock: s, got: '', closedAt: 0 };
  s.on('error', () => {});
  s.on('data', (d) => { c.got += d.toString('latin1'); });
  s.on('close', () => { c.closedAt = Date.now(); });
  c.ready = new Promise((r) => s.on('connect', r));
  return c;
}

const answered = (k) => /^HTTP\/1\.1 200 /.test(k.got) && /\r\n\r\nok\n?/.test(k.got);

if (!IN_NETNS) {
  netnsTest('an IPv6 client is capped by its /64 (in a network namespace)', import.meta.url,
    ['ip link set lo up', ...ADDRS.map((a) => `ip -6 addr add ${a}/64 dev lo nodad`)].join(' && '));
} else {
  test('connections from several addresses of one /64 share one cap', async () => {
    const sys = await startPortico({ name: 'gate-ipv6', noEmulator: true, httpHost: '[::]', env: { PORTICO_MAX_CONNECTIONS_PER_CLIENT: String(CAP) } });
    const port = Number(new URL(sys.webUrl).port);
    const conns = [];
    const open = async (from) => {
      const k = client(from, port);
      conns.push(k);
      await k.ready;
      return k;
    };
    try {
      // CAP connections, each from an address of its own in NET_A, each
      // answered, then each in the middle of its next request: none idle.
      const held = [];
      for (const h of ['a', 'b', 'c']) {
        const k = await open(NET_A + h);
        k.sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
        await waitFor(() => answered(k), { timeout: 5000, what: `an answer to ${NET_A + h}` });
        k.sock.write('GET /healthz HTTP/1.1\r\n');
        held.push(k);
      }
      await sleep(200);
      // A fourth address of the same /64 is the same client, at its cap.
      const more = await open(NET_A + 'd');
      await waitFor(() => more.closedAt, { timeout: 5000, what: 'the fourth connection closed' });
      assert.match(more.got, /^HTTP\/1\.1 503 [^]*Too many connections/);
      // Another /64 is another client.
      const other = await open(NET_B + 'a');
      other.sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      await waitFor(() => answered(other), { timeout: 5000, what: 'an answer to the other /64' });
      assert.deepEqual(held.filter((k) => k.closedAt), [], 'a busy connection was closed');
    } finally {
      for (const k of conns) k.sock.destroy();
      await sys.stop();
    }
  });
}
