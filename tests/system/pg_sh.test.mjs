// scripts/pg.sh, the private PostgreSQL of `make run`: it trusts every
// local connection as its superuser, so its folder must be closed to other
// users whatever the umask made it (a home folder made by useradd is 0755).
// Run as a user that is not root (nobody, when the tests run as root), as
// an operator's `make run` is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync, statSync, chownSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, freePort } from './harness.mjs';

test('a private PostgreSQL started by a user other than root: its folder is 0700 whatever the umask', { timeout: 120000 }, async () => {
  const top = mkdtempSync('/tmp/portico-pgsh-');
  chmodSync(top, 0o755);
  const script = join(top, 'pg.sh');
  copyFileSync(join(ROOT, 'scripts', 'pg.sh'), script);
  chmodSync(script, 0o755);
  const dir = join(top, 'run', 'pg');
  const root = process.getuid() === 0;
  const as = (args) => (root ? ['runuser', ['-u', 'nobody', '--', 'bash', '-c', `umask 022; exec bash ${args}`]]
    : ['bash', ['-c', `umask 022; exec bash ${args}`]]);
  if (root) chownSync(top, Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' })), 0);
  const port = await freePort();
  try {
    const [cmd, args] = as(`${script} start ${dir} ${port}`);
    const url = execFileSync(cmd, args, { encoding: 'utf8', cwd: '/' });
    assert.match(url, /host=.* port=\d+ user=portico/);
    assert.equal(statSync(dir).mode & 0o777, 0o700, 'only the owner reaches the socket');
  } finally {
    const [cmd, args] = as(`${script} stop ${dir}`);
    try { execFileSync(cmd, args, { cwd: '/' }); } catch { /* not started */ }
    rmSync(top, { recursive: true, force: true });
  }
});
