// Every service checks its whole configuration once, at start: a bad value
// of any PORTICO_* variable it reads stops it (exit status 2) with a
// message naming the variable, before it listens on anything. The unit
// test (test_config_tables) walks the tables; this runs the real binaries.
import '../compat.mjs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, freePort, sleep } from './harness.mjs';

const common = {
  PORTICO_LOG_LEVEL: ['loud'],
};
const endpoints = (names) => Object.fromEntries(names.map((n) => [n, ['udp://127.0.0.1:1']]));
const services = {
  web: {
    ...common,
    PORTICO_PUBLIC_URL: ['ftp://example.com'],
    PORTICO_HTTP_ADDR: ['no-port'],
    // A list, as civetweb would read it, would open a second listener.
    PORTICO_OPS_ADDR: ['no-port', '127.0.0.1:19090,0.0.0.0:19091', '127.0.0.1: 9090'],
    ...endpoints(['PORTICO_REGISTRY_ENDPOINT', 'PORTICO_BITBUCKET_ENDPOINT', 'PORTICO_BROKER_BIND']),
    PORTICO_WEB_THREADS: ['1'],
    PORTICO_SESSION_IDLE_MINUTES: ['0'],
    PORTICO_SESSION_MAX_HOURS: ['x'],
    PORTICO_BUS_TIMEOUT_MS: ['5s'],
    PORTICO_LOGIN_TIMEOUT_MS: ['1'],
    PORTICO_SESSION_CACHE_SECONDS: ['-1'],
    PORTICO_REPOSITORY_CACHE_SECONDS: ['601'],
    PORTICO_TRUSTED_PROXIES: ['10.0.0.0/99'],
    PORTICO_LOGIN_RATE_PER_MINUTE: ['0'],
    PORTICO_CALLBACK_RATE_PER_MINUTE: ['many'],
    PORTICO_SETUP_TOKEN_FAILURES_PER_MINUTE: ['1001'],
    PORTICO_HEADER_TIMEOUT_MS: ['10'],
    PORTICO_MAX_CONNECTIONS_PER_CLIENT: ['0'],
    PORTICO_MAX_CONNECTIONS: ['15'],
    // Read lazily and ignored when bad, once; now checked at start.
    PORTICO_LOGIN_TTL_SECONDS: ['10', 'ten minutes'],
  },
  broker: {
    ...common,
    PORTICO_PUBLIC_URL: ['ftp://example.com'],
    ...endpoints(['PORTICO_BROKER_ENDPOINT', 'PORTICO_REGISTRY_ENDPOINT', 'PORTICO_BITBUCKET_ENDPOINT']),
    PORTICO_HEALTH_ADDR: ['no-port'],
    PORTICO_BROKER_WORKERS: ['0'],
    PORTICO_BUS_TIMEOUT_MS: ['x'],
    PORTICO_BITBUCKET_TIMEOUT_MS: ['100'],
    PORTICO_LOGIN_TTL_SECONDS: ['10'],
    PORTICO_ACCESS_RECHECK_SECONDS: ['1'],
  },
  registry: {
    ...common,
    PORTICO_SETUP_TOKEN: ['too-short'],
    PORTICO_SETUP_TOKEN_FILE: ['relative/token'],
    PORTICO_SETUP_TOKEN_TTL_HOURS: ['0'],
    PORTICO_PENDING_LOGINS_PER_BROWSER: ['x'],
    PORTICO_PENDING_LOGINS_MAX: ['1'],
    ...endpoints(['PORTICO_REGISTRY_BIND']),
    PORTICO_HEALTH_ADDR: ['127.0.0.1:0'],
    PORTICO_REGISTRY_WORKERS: ['65'],
    PORTICO_DB_STATEMENT_TIMEOUT_MS: ['1'],
    PORTICO_SWEEP_INTERVAL_S: ['0'],
  },
  bitbucket: {
    ...common,
    ...endpoints(['PORTICO_BITBUCKET_BIND']),
    PORTICO_HEALTH_ADDR: ['no-port', '127.0.0.1:18082,0.0.0.0:18083', '127.0.0.1:+18082'],
    PORTICO_BITBUCKET_TIMEOUT_MS: ['1', '200000'],
    PORTICO_BITBUCKET_CONNECT_TIMEOUT_MS: ['x'],
    PORTICO_BITBUCKET_MAX_HOST_CONNECTIONS: ['257'],
    PORTICO_BITBUCKET_MAX_CALLS: ['0'],
    PORTICO_BITBUCKET_ALLOW: ['10.0.0.0/99'],
  },
};
// What a service needs besides: the registry has one required variable.
const base = { registry: { PORTICO_DATABASE_URL: 'postgresql://portico@127.0.0.1:1/none' } };

// Exit status and stderr; a service that starts after all is killed, and
// then the assertions below fail.
function run(service, env, args = []) {
  return new Promise((resolve) => {
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PORTICO_')));
    const child = spawn(join(BIN, `portico-${service}`), args, {
      env: { ...clean, ...(base[service] || {}), ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    const guard = setTimeout(() => child.kill('SIGKILL'), 20000);
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, stderr });
    });
  });
}

for (const [service, vars] of Object.entries(services)) {
  test(`portico-${service} refuses to start on a bad value of every variable it reads, naming it`, async () => {
    for (const [name, values] of Object.entries(vars)) {
      for (const value of values) {
        const r = await run(service, { [name]: value });
        assert.equal(r.code, 2, `${service} ${name}=${value}: exit ${r.code} ${r.signal || ''}\n${r.stderr}`);
        assert.match(r.stderr, new RegExp(`configuration error: ${name}\\b`), `${service} ${name}=${value}`);
      }
    }
  });

  test(`portico-${service} healthcheck checks the same configuration`, async () => {
    const [name, [value]] = Object.entries(vars).find(([n]) => n !== 'PORTICO_LOG_LEVEL');
    const r = await run(service, { [name]: value }, ['healthcheck']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`configuration error: ${name}\\b`));
  });
}

test('a service waiting for its bind host name to become this machine\'s stops at once on SIGTERM', async () => {
  // It waits up to 30 s for an orchestrator to publish the name; a stop
  // request meanwhile must not wait that out (compose kills after 20 s).
  const keys = mkdtempSync(join(tmpdir(), 'portico-keys-'));
  try {
    for (const s of ['bitbucket', 'broker', 'web']) {
      execFileSync(join(BIN, 'portico-bitbucket'), ['bus-keygen', s], { env: { ...process.env, PORTICO_BUS_KEYS_DIR: keys } });
    }
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PORTICO_')));
    const child = spawn(join(BIN, 'portico-bitbucket'), [], {
      env: {
        ...clean,
        PORTICO_BUS_KEYS_DIR: keys,
        PORTICO_BITBUCKET_BIND: 'tcp://nonexistent.invalid:5552',
        PORTICO_HEALTH_ADDR: `127.0.0.1:${await freePort()}`,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    let code = null;
    const exited = new Promise((res) => child.on('exit', (c) => { code = c; res(Date.now()); }));
    await sleep(1500);
    const t0 = Date.now();
    child.kill('SIGTERM');
    const guard = setTimeout(() => child.kill('SIGKILL'), 20000);
    const at = await exited;
    clearTimeout(guard);
    assert.ok(at - t0 < 3000, `stopped after ${at - t0} ms\n${stderr}`);
    assert.match(stderr, /stopped while waiting for the bind host's address/);
    // A stop asked for is no failure: exit 0, or "on-failure" restarts it.
    assert.equal(code, 0, stderr);
  } finally {
    rmSync(keys, { recursive: true, force: true });
  }
});
