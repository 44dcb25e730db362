// CPU of one complete login, summed over the four services (user + system
// time from /proc, the emulator and this client not counted), with the bus
// as built. Printed, never asserted.
//
//   node tests/bench/login_cpu.mjs [logins]
//
// PORTICO_TEST_BIN runs another build's binaries (e.g. a checkout of the
// commit before, to compare); the bus keys are made with this tree's.
import { readFileSync } from 'node:fs';
import { startPortico } from '../system/harness.mjs';
import { Client } from '../system/client.mjs';
import { setupAdmin, createIntegration, loginAuto } from '../system/login_lib.mjs';

const N = Number(process.argv[2] || 300);
const TICK_MS = 10; // USER_HZ 100

function cpuMs(procs, only) {
  let ticks = 0;
  for (const [name, p] of Object.entries(procs)) {
    if (only && name !== only) continue;
    const stat = readFileSync(`/proc/${p.child.pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(f[11]) + Number(f[12]); // utime, stime
  }
  return ticks * TICK_MS;
}

// One client makes every login: lift the per-client budgets of login starts.
const sys = await startPortico({
  autoApprove: 'jdoe',
  env: { PORTICO_LOG_LEVEL: 'warn', PORTICO_LOGIN_RATE_PER_MINUTE: '100000', PORTICO_CALLBACK_RATE_PER_MINUTE: '100000' },
});
try {
  const admin = await setupAdmin(sys);
  const integ = await createIntegration(admin, sys.emulator);
  for (let i = 0; i < 20; i++) await loginAuto(new Client(sys.webUrl), integ.id);
  // What the services burn doing nothing (heartbeats, timers), to tell
  // apart from the logins' own cost.
  const i0 = cpuMs(sys.procs);
  await new Promise((r) => setTimeout(r, 3000));
  const idle = (cpuMs(sys.procs) - i0) / 3;
  const c0 = cpuMs(sys.procs);
  const t0 = Date.now();
  let failed = 0;
  for (let i = 0; i < N; i++) {
    const r = await loginAuto(new Client(sys.webUrl), integ.id);
    if (r.status !== 303) failed++;
  }
  const used = cpuMs(sys.procs) - c0;
  if (process.env.PORTICO_BENCH_SPLIT) {
    for (const name of Object.keys(sys.procs)) console.log(`  ${name}: ${(cpuMs(sys.procs, name) / N).toFixed(3)} ms total per login`);
  }
  console.log(`login CPU: ${(used / N).toFixed(3)} ms per login over ${N} logins (services' user+system), ` +
    `${((Date.now() - t0) / N).toFixed(2)} ms wall each, ${failed} failed; idle: ${idle.toFixed(1)} ms CPU per second`);
} finally {
  await sys.stop();
}
