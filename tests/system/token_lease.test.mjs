// A refresh slower than the shortest lease (15 s), as a slow Bitbucket with
// a raised PORTICO_BITBUCKET_TIMEOUT_MS allows: a second page meanwhile
// must wait for it, not take the lease over and refresh with the same
// refresh token (Bitbucket has rotated it: the second refresh is refused,
// and the stored pair was deleted). Two brokers, one slow refresh.
//
// Each broker with one worker, run (as root) as process 1 of a PID
// namespace of its own on this host's name, as two containers with host
// networking are: a lease holder named by host, process id and worker alone
// was then the same for both, and the second page took the first one's
// lease as its own.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPortico, startEmulator, sleep, canUnsharePid } from './harness.mjs';
import { Client } from './client.mjs';
import { setupAdmin, createIntegration, loginAuto, text } from './login_lib.mjs';

let sys, emu, B;

before(async () => {
  sys = await startPortico({
    name: 'token-lease',
    brokers: 2,
    brokerPidNamespace: canUnsharePid(),
    env: {
      PORTICO_BROKER_WORKERS: '1',
      PORTICO_BITBUCKET_TIMEOUT_MS: '40000',
      PORTICO_LOGIN_TIMEOUT_MS: '90000',
      PORTICO_REPOSITORY_CACHE_SECONDS: '0',
    },
  });
  // expires_in 40: the broker counts a token expired 30 s early, so 10 s
  // after the login the next page refreshes.
  emu = await startEmulator({ autoApprove: 'jdoe', accessTtl: 40, logDir: sys.logDir });
  const admin = await setupAdmin(sys);
  B = await createIntegration(admin, emu, { name: 'Slow Bitbucket' });
});

after(async () => {
  if (emu) await emu.stop();
  if (sys) await sys.stop();
});

const stats = async () => (await emu.admin('stats', undefined, 'GET')).json;

test('a second page during a refresh longer than 15 s waits for it: one refresh, the rotated pair kept', { timeout: 120000 }, async () => {
  const c = new Client(sys.webUrl);
  assert.equal((await loginAuto(c, B.id, { user: 'user40' })).status, 303);
  await sleep(11000);
  const before = await stats();
  await emu.admin('faults', { latency_ms: 20000 });
  let a, b;
  try {
    const pa = c.get('/account');
    await sleep(16500); // past the shortest lease, while the refresh waits
    const pb = c.get('/account');
    [a, b] = await Promise.all([pa, pb]);
  } finally {
    await emu.admin('faults', { latency_ms: 0 });
  }
  const after = await stats();
  assert.match(a.text, /<table class="repositories">/, text(a.text).slice(0, 300));
  assert.match(b.text, /<table class="repositories">/, text(b.text).slice(0, 300));
  assert.equal(after.grants.refresh_token - before.grants.refresh_token, 1, 'one refresh');
  assert.equal(after.refresh_token_reuse, before.refresh_token_reuse, 'no rotated refresh token presented again');
  assert.equal(after.failed_refreshes, before.failed_refreshes);
  // The rotated pair was stored: the next page (which refreshes again, the
  // token being this short-lived) presents the new refresh token.
  assert.match((await c.get('/account')).text, /<table class="repositories">/);
  const end = await stats();
  assert.equal(end.refresh_token_reuse, before.refresh_token_reuse);
  assert.equal(end.failed_refreshes, before.failed_refreshes);
});
