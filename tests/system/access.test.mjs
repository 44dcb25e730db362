// Who may log in (access rules per integration) and access that ends when
// Bitbucket ends it, against the whole system and the strict emulator:
// everyone by default; refused by project, by repository and by pattern
// (a page that says whom to ask, no account, an audit entry); the emulator's
// per-user permissions; and sessions that end within the re-check bound
// when a user is disabled in Bitbucket, their authorization is revoked,
// they lose the permission, or a rule changes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPortico, startEmulator, waitFor, sleep } from './harness.mjs';
import { Client, csrfFrom, formField } from './client.mjs';
import { setupAdmin, createIntegration, loginAuto, startLogin, text } from './login_lib.mjs';

// The bound under test: sessions end within the re-check interval (plus the
// web's 5 s session cache and the time of one check).
const RECHECK_S = 3;
const BOUND_MS = (RECHECK_S + 5 + 7) * 1000;

let sys, admin, I, emu7, O;

before(async () => {
  sys = await startPortico({
    name: 'access',
    autoApprove: 'jdoe',
    // debug: every line the services can write, for the secret scan below.
    env: {
      PORTICO_ACCESS_RECHECK_SECONDS: String(RECHECK_S),
      PORTICO_LOG_LEVEL: 'debug',
      // A Bitbucket that does not answer costs this much per call (the
      // "one Bitbucket down" test below).
      PORTICO_BITBUCKET_TIMEOUT_MS: '3000',
      // Dozens of logins a minute from this one address: the per-client
      // limits are tested in edge.test.mjs.
      PORTICO_LOGIN_RATE_PER_MINUTE: '1000',
      PORTICO_CALLBACK_RATE_PER_MINUTE: '1000',
    },
  });
  admin = await setupAdmin(sys);
  I = await createIntegration(admin, sys.emulator, { name: 'Bitbucket' });
});

after(async () => {
  if (emu7) await emu7.stop();
  if (sys) await sys.stop();
});

async function setRules({ resource = '', patterns = '', contact = '' } = {}, id = I.id) {
  const form = await admin.get(`/admin/integrations/${id}/access`);
  assert.equal(form.status, 200);
  const r = await admin.post(`/admin/integrations/${id}/access`, { csrf: csrfFrom(form.text), resource, patterns, contact });
  return r;
}

async function login(user) {
  const c = new Client(sys.webUrl);
  const r = await loginAuto(c, I.id, { user });
  return { c, r };
}

const signedIn = async (c) => (await c.get('/account')).status === 200;
const audit = async () => text((await admin.get('/admin/audit')).text);
const users = async () => (await admin.get('/admin/users')).text;

test('by default everyone with an account on the Bitbucket may log in, and the page says so', async () => {
  const page = await admin.get(`/admin/integrations/${I.id}`);
  assert.match(text(page.text), /Who may log in Everyone with an account on this Bitbucket may log in\./);
  assert.match(text(page.text), /Who may log in everyone with an account on this Bitbucket details/);
  const home = (await admin.get('/admin')).text;
  assert.match(home, /<th>Who may log in<\/th>/);
  assert.match(home.match(new RegExp(`<tr data-integration-id="${I.id}">.*?</tr>`))[0], /<td class="access">everyone<\/td>/);
  const form = await admin.get(`/admin/integrations/${I.id}/access`);
  assert.match(text(form.text), /A person may log in only when they pass every rule that is set; with no rule set, everyone/);
  for (const label of ['Bitbucket project or repository', 'User names and e-mail addresses', 'Whom to ask for access', 'Save access rules'])
    assert.match(form.text, new RegExp(label));
  const { c, r } = await login('jdoe');
  assert.equal(r.status, 303);
  assert.ok(await signedIn(c));
});

test('bad rules are refused with the field named and nothing saved', async () => {
  let r = await setRules({ resource: 'PROJ/a/b' });
  assert.equal(r.status, 400);
  assert.match(text(r.text), /Nothing was saved/);
  assert.match(r.text, /id="access-resource-error"/);
  r = await setRules({ patterns: 'j*doe' });
  assert.equal(r.status, 400);
  assert.match(r.text, /id="access-patterns-error"/);
  // A NUL byte (%00) would cut the value: "PROJ" alone is a wider rule.
  r = await setRules({ resource: 'PROJ\0/secret-repo' });
  assert.equal(r.status, 400);
  assert.match(text(r.text), /holds a NUL character/);
  r = await setRules({ patterns: 'alice\0\n*@example.com' });
  assert.equal(r.status, 400);
  assert.match(r.text, /id="access-patterns-error"/);
  const page = await admin.get(`/admin/integrations/${I.id}`);
  assert.match(text(page.text), /Everyone with an account on this Bitbucket may log in/);
});

test('a project rule: people who can read it get in, others get a refusal page, no account and an audit entry', async () => {
  const r = await setRules({ resource: 'PROJ', contact: 'the platform team (#registry-help)' });
  assert.equal(r.status, 303);
  assert.match(r.location, /access=saved/);
  const page = text((await admin.get(`/admin/integrations/${I.id}`)).text);
  assert.match(page, /Only people who can read the Bitbucket project PROJ may log in\./);
  assert.match(page, /Who may log in PROJ details/, 'the Details table summarises the rules');
  const home = (await admin.get('/admin')).text;
  const row = home.match(new RegExp(`<tr data-integration-id="${I.id}">.*?</tr>`))[0];
  assert.match(row, /<td class="access">PROJ<\/td>/, 'and so does the list of integrations');

  // jane reads three PROJ repositories: Bitbucket lets her see the project.
  assert.equal((await login('jane.doe@example.com')).r.status, 303);
  // zoë reads nothing in PROJ.
  const { c, r: refused } = await login('zoë');
  assert.equal(refused.status, 403);
  const t = text(refused.text);
  assert.match(t, /Access is restricted/);
  assert.match(t, /restricted|only some people/);
  assert.match(t, /Ask the platform team \(#registry-help\) for access\./);
  assert.match(t, /No Portico account was created/);
  assert.equal(c.cookie('portico_session'), undefined);
  const u = await users();
  const table = u.match(/<table class="users">[\s\S]*?<\/table>/)[0];
  assert.doesNotMatch(table, /zo&#235;|zoë|Zoë/, 'no account for zoë');
  const refusedSection = text(u.match(/<section class="card" id="refused-logins">[\s\S]*?<\/section>/)[0]);
  assert.match(refusedSection, /Refused logins .* zoë #\d+ cannot read PROJ/, 'the Users page lists the refused login');
  assert.match(await audit(), /login\.refused integration:\d+ .*rule=resource resource=PROJ/);
});

test('the emulator learns project permissions: a grant lets zoë in, NONE takes it away again', async () => {
  let g = await sys.emulator.admin('permissions', { username: 'zoë', project: 'PROJ', permission: 'PROJECT_READ' });
  assert.equal(g.status, 200, g.text);
  assert.equal((await login('zoë')).r.status, 303);
  g = await sys.emulator.admin('permissions', { username: 'zoë', project: 'PROJ', permission: 'NONE' });
  assert.equal(g.status, 200);
  assert.equal((await login('zoë')).r.status, 403);
});

test('a repository rule checks that repository only', async () => {
  assert.equal((await setRules({ resource: 'PROJ/service-03' })).status, 303);
  assert.equal((await login('jane.doe@example.com')).r.status, 303, 'jane reads service-03');
  const { r } = await login('jdoe');
  assert.equal(r.status, 403, 'jdoe cannot read service-03');
  assert.match(text(r.text), /Ask a Portico admin for access\./);
  const g = await sys.emulator.admin('permissions', { username: 'jdoe', project: 'PROJ', repository: 'service-03', permission: 'REPO_READ' });
  assert.equal(g.status, 200, g.text);
  assert.equal((await login('jdoe')).r.status, 303);
});

test('a pattern rule: exact names and *@domain, combined with the resource rule', async () => {
  assert.equal((await setRules({ resource: '', patterns: 'jdoe\n*@corp.example' })).status, 303);
  assert.equal((await login('jdoe')).r.status, 303);
  const { r } = await login('jane.doe@example.com');
  assert.equal(r.status, 403);
  assert.match(await audit(), /login\.refused .*rule=patterns/);
  assert.equal((await setRules({ patterns: '*@example.com' })).status, 303);
  assert.equal((await login('jane.doe@example.com')).r.status, 303);
  assert.equal((await login('zoë')).r.status, 303, 'zoe@example.com matches');
  // Both rules: zoë matches the pattern but can no longer read PROJ.
  assert.equal((await setRules({ resource: 'PROJ', patterns: '*@example.com' })).status, 303);
  const page = text((await admin.get(`/admin/integrations/${I.id}`)).text);
  assert.match(page, /Only people who can read the Bitbucket project PROJ and match one of 1 user names/);
  assert.match((await admin.get('/admin')).text, /<td class="access">PROJ · 1 name or pattern<\/td>/);
  assert.equal((await login('zoë')).r.status, 403);
  assert.equal((await login('jane.doe@example.com')).r.status, 303);
  assert.equal((await setRules({})).status, 303);
});

test('a user disabled in Bitbucket while signed in: sessions end within the bound, the account is marked', async () => {
  const { c, r } = await login('user7');
  assert.equal(r.status, 303);
  assert.ok(await signedIn(c));
  const d = await sys.emulator.admin('users/disable', { username: 'user7' });
  assert.equal(d.status, 200);
  const t0 = Date.now();
  await waitFor(async () => !(await signedIn(c)), { timeout: BOUND_MS, interval: 250, what: 'the session to end' });
  const took = Date.now() - t0;
  assert.ok(took <= BOUND_MS, `ended after ${took} ms`);
  const u = await users();
  const row = u.match(/<tr data-user-id="\d+">(?:(?!<\/tr>)[\s\S])*user7(?:(?!<\/tr>)[\s\S])*<\/tr>/);
  assert.ok(row, 'user7 is still listed: marked, not deleted');
  assert.match(text(row[0]), /access ended/);
  assert.match(text(row[0]), /revoked, or the user was disabled or deleted in Bitbucket/);
  assert.match(await audit(), /access\.ended user:\d+ .*reason=authorization_ended/);
  // Disabled users cannot log in again.
  const again = new Client(sys.webUrl);
  const start = await again.get(`/login/start/${I.id}`);
  const auth = await again.get(start.location, { headers: { 'x-emulator-user': 'user7' } });
  assert.equal(auth.status, 403);
  await sys.emulator.admin('users/enable', { username: 'user7' });
  // A new login clears the mark.
  assert.equal((await login('user7')).r.status, 303);
  const row2 = (await users()).match(/<tr data-user-id="\d+">(?:(?!<\/tr>)[\s\S])*user7(?:(?!<\/tr>)[\s\S])*<\/tr>/);
  assert.doesNotMatch(text(row2[0]), /access ended/);
});

test('an authorization revoked in Bitbucket ends the sessions within the bound', async () => {
  const { c } = await login('user8');
  assert.ok(await signedIn(c));
  assert.equal((await sys.emulator.admin('tokens/revoke', { username: 'user8' })).status, 200);
  await waitFor(async () => !(await signedIn(c)), { timeout: BOUND_MS, interval: 250, what: 'the session to end' });
});

test('losing the permission a rule names ends the session within the bound', async () => {
  assert.equal((await setRules({ resource: 'PROJ' })).status, 303);
  const { c, r } = await login('user9');
  assert.equal(r.status, 303);
  assert.ok(await signedIn(c));
  await sys.emulator.admin('permissions', { username: 'user9', project: 'PROJ', permission: 'NONE' });
  await waitFor(async () => !(await signedIn(c)), { timeout: BOUND_MS, interval: 250, what: 'the session to end' });
  assert.match(await audit(), /access\.ended .*reason=rule_resource/);
  assert.equal((await setRules({})).status, 303);
});

test('a changed rule applies to existing sessions within the bound', async () => {
  const { c: keep } = await login('jdoe');
  const { c: drop } = await login('user10');
  assert.ok(await signedIn(keep));
  assert.ok(await signedIn(drop));
  assert.equal((await setRules({ patterns: 'jdoe' })).status, 303);
  await waitFor(async () => !(await signedIn(drop)), { timeout: BOUND_MS, interval: 250, what: 'user10 to be signed out' });
  assert.ok(await signedIn(keep), 'jdoe still passes the rules');
  assert.match(await audit(), /access\.ended .*reason=rule_patterns/);
  assert.equal((await setRules({})).status, 303);
});

// OAuth 1 (Bitbucket older than 7.21): the same rules with signed requests,
// and a token revoked in Bitbucket (OAuth 1 tokens are never refreshed).
async function createOAuth1(baseUrl, name) {
  const form = await admin.get('/admin/integrations/new');
  const id = formField(form.text, 'id');
  const r = await admin.post('/admin/integrations', {
    csrf: csrfFrom(form.text), id, platform: 'bitbucket-dc', base_url: baseUrl, oauth_version: '1', name, ca_cert: '',
  });
  assert.equal(r.status, 303, text(r.text).slice(0, 400));
  const page = (await admin.get(`/admin/integrations/${id}`)).text;
  const consumerKey = page.match(/id="consumer-key" readonly value="([^"]+)"/)[1];
  const pem = page.match(/<textarea id="public-key"[^>]*>([^<]+)<\/textarea>/)[1];
  return { id: Number(id), consumerKey, publicKey: pem.replace(/&#39;/g, "'").replace(/&amp;/g, '&') };
}

async function loginOAuth1(id, user) {
  const c = new Client(sys.webUrl);
  const start = await startLogin(c, id);
  let r = await c.get(start.location);
  const action = r.text.match(/<form method="post" action="([^"]+)"/)[1];
  r = await c.post(new URL(action, start.location).toString(), { j_username: user, j_password: 'password', next: formField(r.text, 'next') });
  r = await c.follow(r);
  const consent = r.text.match(/<form method="post" action="([^"]+)"/)[1];
  const hidden = Object.fromEntries([...r.text.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((m) => [m[1], m[2]]));
  r = await c.post(new URL(consent, start.location).toString(), { ...hidden, decision: 'allow' });
  assert.ok(r.status === 302 || r.status === 303, `consent: ${r.status}`);
  return { c, r: await c.get(r.location) };
}

test('OAuth 1: the rules apply with signed requests, and a revoked token ends the session', async () => {
  emu7 = await startEmulator({ version: '7.6.0', logDir: sys.logDir });
  O = await createOAuth1(emu7.url, 'Old Bitbucket');
  const reg = await emu7.admin('applinks/oauth1', { name: 'Portico', consumer_key: O.consumerKey, public_key: O.publicKey });
  assert.ok(reg.status === 200 || reg.status === 201, reg.text);
  assert.equal((await setRules({ resource: 'PROJ' }, O.id)).status, 303);
  const refused = await loginOAuth1(O.id, 'zoë');
  assert.equal(refused.r.status, 403);
  assert.match(text(refused.r.text), /Access is restricted/);
  const { c, r } = await loginOAuth1(O.id, 'user13');
  assert.equal(r.status, 303, text(r.text).slice(0, 400));
  assert.ok(await signedIn(c));
  assert.equal((await emu7.admin('tokens/revoke', { username: 'user13' })).status, 200);
  await waitFor(async () => !(await signedIn(c)), { timeout: BOUND_MS, interval: 250, what: 'the OAuth 1 session to end' });
  assert.match(await audit(), /access\.ended .*reason=authorization_ended/);
});

test('OAuth 1: a signature Bitbucket cannot verify (the link\'s key, a proxy rewriting Host) postpones the re-check, it does not end access', async () => {
  assert.equal((await setRules({}, O.id)).status, 303);
  const { c, r } = await loginOAuth1(O.id, 'user16');
  assert.equal(r.status, 303, text(r.text).slice(0, 400));
  assert.ok(await signedIn(c));
  await emu7.admin('faults', { oauth1_signature_invalid: true });
  try {
    await waitFor(async () => /access re-check postponed.*code=UNAUTHORIZED/.test(sys.allLogs()),
      { timeout: BOUND_MS, interval: 250, what: 'a re-check to meet the refused signature' });
    await sleep((RECHECK_S + 1) * 1000);
  } finally {
    await emu7.admin('faults', { oauth1_signature_invalid: false });
  }
  assert.ok(await signedIn(c), 'still signed in once the signatures verify again');
  assert.doesNotMatch(await users(), /user16(?:(?!<\/tr>)[\s\S])*access ended/);
});

test('a user name that now belongs to another account ends the session; that account\'s details are not stored', async () => {
  // Renamed in Bitbucket, with another account taking the old name: the
  // re-check finds a record by the stored slug whose id is not the
  // identity's. (The fault shows every record with that id.)
  const { c, r } = await login('user14');
  assert.equal(r.status, 303);
  assert.ok(await signedIn(c));
  await sys.emulator.admin('faults', { record_id: 424242 });
  try {
    await waitFor(async () => !(await signedIn(c)), { timeout: BOUND_MS, interval: 250, what: 'the session to end' });
    assert.match(await audit(), /access\.ended .*reason=user_gone/);
  } finally {
    await sys.emulator.admin('faults', { record_id: 0 });
  }
});

test('a Bitbucket that does not answer holds up nobody else\'s re-check', async () => {
  // Twelve people signed in through a Bitbucket that then stops answering:
  // the broker takes their checks in one batch, and each would wait out the
  // 3 s timeout. A person disabled on the other Bitbucket meanwhile must
  // still lose the session within the bound.
  const emuS = await startEmulator({ autoApprove: 'jdoe', logDir: sys.logDir });
  try {
    const S = await createIntegration(admin, emuS, { name: 'Bitbucket S' });
    for (let i = 0; i < 12; i++) {
      const r = await loginAuto(new Client(sys.webUrl), S.id, { user: `user${40 + i}` });
      assert.equal(r.status, 303);
    }
    await emuS.admin('faults', { latency_ms: 60000 });
    await sleep((RECHECK_S + 1) * 1000); // every one of them due, and taken
    const { c, r } = await login('user15');
    assert.equal(r.status, 303);
    assert.equal((await sys.emulator.admin('users/disable', { username: 'user15' })).status, 200);
    const t0 = Date.now();
    await waitFor(async () => !(await signedIn(c)), { timeout: BOUND_MS, interval: 250, what: 'the session to end' });
    assert.ok(Date.now() - t0 <= BOUND_MS);
    await sys.emulator.admin('users/enable', { username: 'user15' });
  } finally {
    await emuS.stop();
  }
});

test('a bad PORTICO_ACCESS_RECHECK_SECONDS stops the broker, naming the variable', async () => {
  const p = await sys.startBroker({ PORTICO_ACCESS_RECHECK_SECONDS: 'soon' });
  const { code } = await p.exited;
  assert.notEqual(code, 0);
  assert.match(p.output, /PORTICO_ACCESS_RECHECK_SECONDS/);
});

test('the broker counts re-checks and refused logins in its metrics', async () => {
  const addr = sys.procs['broker-1'].env.PORTICO_HEALTH_ADDR;
  const m = await (await fetch(`http://${addr}/metrics`)).text();
  assert.match(m, /portico_access_checks_total\{result="ok"\} [1-9]/);
  assert.match(m, /portico_access_checks_total\{result="ended"\} [1-9]/);
  assert.match(m, /portico_logins_refused_total\{rule="resource"\} [1-9]/);
  assert.match(m, /portico_logins_refused_total\{rule="patterns"\} [1-9]/);
});

test('no token or secret in any log line', async () => {
  const logs = sys.allLogs();
  assert.doesNotMatch(logs, new RegExp(I.clientSecret));
  assert.doesNotMatch(logs, /access_token=|refresh_token=/);
});
