// Portico's own addresses change while it runs: a container that starts
// again gets a new address, an interface is added, a name resolves later.
// The Bitbucket service refuses its own addresses as a Base URL (SECURITY.md:
// Portico is no proxy into its own network), and read them once at start:
// an address that became Portico's later was reachable as "Bitbucket". Now
// it reads them again every 10 s. The test adds an address to loopback, so
// it runs inside a network namespace of its own (unshare -n, as root); where
// namespaces are not allowed it is skipped and says why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { startPortico, waitFor, IN_NETNS, netnsTest } from './harness.mjs';
import { csrfFrom, formField } from './client.mjs';
import { setupAdmin } from './login_lib.mjs';

const ADDR = '10.213.7.1';

function baseUrlError(html) {
  const m = html.match(/<p class="field-error" id="base-url-error">([^<]*)<\/p>/);
  return m ? m[1] : '';
}

async function tryBaseUrl(admin, url) {
  const f = await admin.get('/admin/integrations/new');
  const r = await admin.post('/admin/integrations', {
    csrf: csrfFrom(f.text), id: formField(f.text, 'id'), platform: 'bitbucket-dc', oauth_version: '2', name: 'Own',
    base_url: url, client_id: 'cid', client_secret: 'sec', ca_cert: '',
  });
  return baseUrlError(r.text);
}

if (!IN_NETNS) {
  netnsTest('an address that becomes Portico\'s while it runs is refused as a Base URL (in a network namespace)', import.meta.url, 'ip link set lo up');
} else {
  test('an address added to this machine is refused within the refresh time', { timeout: 120000 }, async () => {
    // A plain HTTP server on every address: what a Base URL reaches when
    // nothing refuses it ("not Bitbucket Data Center").
    const srv = http.createServer((req, res) => { res.setHeader('content-type', 'application/json'); res.end('{}'); });
    await new Promise((res) => srv.listen(0, '0.0.0.0', res));
    const port = srv.address().port;
    // A private address, where Bitbucket Data Center lives: allowed unless
    // it is Portico's own.
    const sys = await startPortico({ name: 'own-addresses' });
    try {
      const admin = await setupAdmin(sys);
      const url = `http://${ADDR}:${port}`;
      assert.doesNotMatch(await tryBaseUrl(admin, url), /Portico itself/);
      execFileSync('ip', ['addr', 'add', `${ADDR}/32`, 'dev', 'lo']);
      const e = await waitFor(async () => {
        const m = await tryBaseUrl(admin, url);
        return /Portico itself/.test(m) ? m : null;
      }, { timeout: 25000, interval: 1000, what: `${ADDR} refused as Portico's own` });
      assert.match(e, new RegExp(`${ADDR.replace(/\./g, '\\.')} is an address of Portico itself`));
      assert.match(sys.procs.bitbucket.output, /Portico's own addresses changed/);
    } finally {
      await sys.stop();
      srv.close();
    }
  });
}
