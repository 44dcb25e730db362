// `make run`'s start (scripts/run.sh, which `make run` runs once the build is
// current): a service that stops while Portico starts, or later, ends the
// whole run with its name, the errors from its log and a failing status,
// never with the "Portico is running" banner over a dead service. Its own
// private PostgreSQL and ports; loopback only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { ROOT, freePort, portBindable, waitFor } from './harness.mjs';

// Four consecutive free ports for the health listeners (registry,
// bitbucket, two brokers).
async function freeRun(n) {
  for (let i = 0; i < 50; i++) {
    const base = await freePort();
    let k = 1;
    while (k < n && (await portBindable(base + k))) k++;
    if (k === n) return base;
  }
  throw new Error('no run of free ports');
}

// The pid of parent's child process named comm (as /proc shows it), or 0.
function childNamed(parent, comm) {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const m = stat.match(/^\d+ \((.*)\) \S (\d+)/);
      if (m && m[1] === comm && Number(m[2]) === parent) return Number(d);
    } catch { /* gone meanwhile */ }
  }
  return 0;
}

async function startRun(httpPort) {
  const dir = mkdtempSync('/tmp/portico-run-start-');
  chmodSync(dir, 0o755); // the private PostgreSQL runs as its own user
  const child = spawn('bash', ['scripts/run.sh'], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORTICO_RUN_DIR: dir,
      PORTICO_HTTP_ADDR: `127.0.0.1:${httpPort}`,
      PORTICO_PUBLIC_URL: `http://127.0.0.1:${httpPort}`,
      PORTICO_OPS_ADDR: `127.0.0.1:${await freePort()}`,
      PORTICO_RUN_HEALTH_PORT: String(await freeRun(4)),
      PORTICO_RUN_PG_PORT: String(await freePort()),
      PORTICO_DEMO_BITBUCKET_ADDR: `127.0.0.1:${await freePort()}`,
      PORTICO_LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // a process group of its own, to kill whole if need be
  });
  const run = { child, dir, out: '', err: '' };
  child.stdout.on('data', (d) => { run.out += d; });
  child.stderr.on('data', (d) => { run.err += d; });
  run.exited = new Promise((res) => child.on('exit', (code) => res(code)));
  return run;
}

// The run's status once it ends by itself (within waitMs); past that it is
// stopped as Ctrl-C would (its PostgreSQL too), then killed with its
// process group, and the status is null.
async function finish(run, waitMs = 60000) {
  const ended = (ms) => Promise.race([run.exited, new Promise((res) => setTimeout(() => res(undefined), ms))]);
  let code = await ended(waitMs);
  if (code === undefined) {
    run.child.kill('SIGTERM');
    if ((await ended(20000)) === undefined) process.kill(-run.child.pid, 'SIGKILL');
    await run.exited;
    code = null;
  }
  rmSync(run.dir, { recursive: true, force: true });
  return code;
}

test('a port already in use ends the start with the service, its error and a failing status', { timeout: 120000 }, async () => {
  const squatter = net.createServer((s) => s.on('error', () => {}));
  let run;
  try {
    const httpPort = await freePort();
    await new Promise((res) => squatter.listen(httpPort, '0.0.0.0', res));
    run = await startRun(httpPort);
    const code = await finish(run);
    assert.equal(code, 1, run.out + run.err);
    assert.match(run.err, /portico: web stopped; from .*web\.log:\n {2}.*level=error.*could not listen for HTTP.*Address already in use/);
    assert.match(run.err, /level=error.*could not listen for HTTP \(PORTICO_HTTP_ADDR\)/);
    assert.doesNotMatch(run.out, /Portico is running/);
    assert.match(run.out, /portico: stopped/);
  } finally {
    squatter.close();
    if (run) await finish(run, 0);
  }
});

test('a service that dies after the start ends the run, named', { timeout: 120000 }, async () => {
  const run = await startRun(await freePort());
  try {
    await waitFor(() => /Portico is running[^]*Logs: /.test(run.out), { timeout: 90000, what: 'the banner' });
    assert.match(run.out, /Readiness: .*\(200\)/);
    // The Bitbucket service of this run: a child of the script.
    const pid = childNamed(run.child.pid, 'portico-bitbuck');
    assert.ok(pid > 0, 'the run\'s Bitbucket service');
    process.kill(pid, 'SIGKILL');
    const code = await finish(run);
    assert.equal(code, 1, run.out + run.err);
    assert.match(run.err, /portico: bitbucket stopped; from .*bitbucket\.log:/);
    assert.match(run.out, /portico: stopped/);
  } finally {
    await finish(run, 0);
  }
});
