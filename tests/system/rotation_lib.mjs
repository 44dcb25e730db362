// What the bus key rotation tests share: a system that lets one address
// log in thousands of times (the per-client limits are tested in
// edge.test.mjs), bus_probe to talk to a bus port with chosen keys, and the
// web's count of connected broker workers.
import { execFileSync, execFile } from 'node:child_process';
import { join } from 'node:path';
import { startPortico, ROOT } from './harness.mjs';

const PROBE = join(ROOT, 'build', 'tests', 'bus_probe');

export async function startRotationSystem(opts = {}) {
  execFileSync('make', ['-s', '-C', ROOT, 'build/tests/bus_probe'], { stdio: 'inherit' });
  return startPortico({
    autoApprove: 'jdoe',
    ...opts,
    env: { PORTICO_LOGIN_RATE_PER_MINUTE: '100000', PORTICO_CALLBACK_RATE_PER_MINUTE: '100000', ...(opts.env || {}) },
  });
}

// bus_probe ENDPOINT SERVICE AS METHOD TIMEOUT_MS, with env (sys.env and,
// for other keys, another PORTICO_BUS_KEYS_DIR); resolves to its JSON line.
export function busProbe(args, env) {
  return new Promise((res, rej) => execFile(PROBE, args, { env, timeout: 20000 }, (err, out) => (err ? rej(err) : res(JSON.parse(out)))));
}

export async function brokerWorkers(sys) {
  const body = await (await fetch(`${sys.opsUrl}/readyz`)).text();
  const m = body.match(/\((\d+) workers connected\)/);
  return m ? Number(m[1]) : 0;
}
