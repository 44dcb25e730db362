// PORTICO_SETUP_CMD for the peer comparison kit (compare.sh): makes the one
// integration its driver logs in through, the way an administrator would
// (setup token, Add Integration), with the application link created through
// the fake Bitbucket's admin API.
//
//   PERF_FASTBB_URL, PERF_FASTBB_ADMIN, PORTICO_PUBLIC_URL and
//   PORTICO_SETUP_TOKEN come from compare.sh.
import { Client, csrfFrom as csrf, formField as field } from '../system/client.mjs';

const need = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run this from compare.sh)`);
  return v;
};

const admin = new Client(need('PORTICO_PUBLIC_URL'));
const page = await admin.get('/admin');
let r = await admin.post('/admin/setup-token', { csrf: csrf(page.text), token: need('PORTICO_SETUP_TOKEN') });
if (r.status !== 303) throw new Error(`setup token refused: ${r.status}`);
const form = await admin.get('/admin/integrations/new');
const id = field(form.text, 'id');
if (!id) throw new Error(`no Add Integration form: ${form.status}`);
const link = await fetch(need('PERF_FASTBB_ADMIN'), {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ name: 'Portico', redirect_uri: `${admin.base}/oauth/callback/${id}`, scopes: ['REPO_READ'] }),
});
if (link.status !== 201) throw new Error(`fastbb application link: ${link.status} ${await link.text()}`);
const { client_id: clientId, client_secret: clientSecret } = await link.json();
r = await admin.post('/admin/integrations', {
  csrf: csrf(form.text), id, platform: 'bitbucket-dc', base_url: need('PERF_FASTBB_URL'), oauth_version: '2',
  client_id: clientId, client_secret: clientSecret, name: 'Bitbucket (fastbb)',
});
if (r.status !== 303) throw new Error(`Add Integration: ${r.status} ${r.text.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 400)}`);
console.log(`integration ${id} -> ${need('PERF_FASTBB_URL')}`);
