#!/usr/bin/env node
// Runs a command as a slower machine would: in a cgroup whose CPU quota gives it `cpus` CPUs' worth of time
// (`cpu.max` on cgroup v2, `cpu.cfs_quota_us` on v1), with a short period so the quota bites within a Node
// start and not only on average. The judging machines have 2 cores on which a Node start takes 68 ms; on a
// 2-core machine where it takes 40 ms, `--cpus 1.18` (2 × 40 / 68) gives the suite about their throughput
// (`--calibrate 68` measures and prints it). It is an approximation: one process alone still runs at this
// machine's speed, and kernel threads (namespace teardown, RCU, softirqs) run outside the quota.
//
//   node scripts/slower-machine.mjs --cpus 1.18 -- node dist/test/run.js
//   node scripts/slower-machine.mjs --calibrate 68     # prints the --cpus for a machine where a Node start takes 68 ms
//
// Root only. The cgroup is removed when the command ends; one left by a killed run is removed by the next.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

const PERIOD_US = 10_000;
const PREFIX = 'netplumb-slower-';

function usage(msg) {
  if (msg) console.error(`slower-machine: ${msg}`);
  console.error('usage: slower-machine.mjs --cpus N -- COMMAND [ARG...] | --calibrate NODE_START_MS');
  process.exit(2);
}

/** The cgroup root this machine offers a CPU quota in: v2 (cpu.max) or v1's cpu controller. */
function cgroupRoot() {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) {
    const on = readFileSync('/sys/fs/cgroup/cgroup.subtree_control', 'utf8');
    if (!/\bcpu\b/.test(on)) writeFileSync('/sys/fs/cgroup/cgroup.subtree_control', '+cpu');
    return { dir: '/sys/fs/cgroup', v2: true };
  }
  if (existsSync('/sys/fs/cgroup/cpu/cpu.cfs_quota_us')) return { dir: '/sys/fs/cgroup/cpu', v2: false };
  throw new Error('no cgroup CPU controller found (neither v2 cpu.max nor v1 cpu.cfs_quota_us)');
}

function removeStale(root) {
  for (const name of readdirSync(root.dir)) {
    if (!name.startsWith(PREFIX)) continue;
    const pid = Number(name.slice(PREFIX.length));
    if (Number.isInteger(pid) && pid > 0 && existsSync(`/proc/${pid}`)) continue;
    try {
      rmdirSync(join(root.dir, name));
    } catch {
      // still has processes (a command of the killed run lives on): left for a later run
    }
  }
}

/** Creates this run's cgroup with the quota and moves this process (and so its future children) into it. */
function enter(root, cpus) {
  const dir = join(root.dir, `${PREFIX}${process.pid}`);
  mkdirSync(dir);
  const quota = Math.max(1000, Math.round(cpus * PERIOD_US));
  if (root.v2) writeFileSync(join(dir, 'cpu.max'), `${quota} ${PERIOD_US}`);
  else {
    writeFileSync(join(dir, 'cpu.cfs_period_us'), String(PERIOD_US));
    writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(quota));
  }
  writeFileSync(join(dir, 'cgroup.procs'), String(process.pid));
  return dir;
}

function leave(root, dir) {
  writeFileSync(join(root.dir, 'cgroup.procs'), String(process.pid));
  for (let i = 0; i < 50; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch {
      spawnSync('sleep', ['0.1']);
    }
  }
  console.error(`slower-machine: ${dir} still has processes; the next run removes it`);
}

/** Median wall time of `node -e 0`, in ms. */
function nodeStartMs(runs = 15) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    spawnSync(process.execPath, ['-e', '0']);
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

const args = process.argv.slice(2);
if (process.getuid?.() !== 0) usage('needs root (it creates a cgroup)');
const root = cgroupRoot();
removeStale(root);

if (args[0] === '--calibrate') {
  const target = Number(args[1]);
  if (!(target > 0)) usage('--calibrate needs the target Node start in ms');
  // The quota limits the CPU time of the whole cgroup, not the speed of one core: a machine whose cores are
  // k times slower has k times less CPU time to give, so the quota is this machine's CPUs divided by k.
  const here = nodeStartMs();
  const cpus = (availableParallelism() * here) / target;
  console.log(`node -e 0 here: ${here.toFixed(1)} ms on ${availableParallelism()} CPUs; for ${target} ms: --cpus ${cpus.toFixed(2)}`);
  process.exit(0);
}

if (args[0] !== '--cpus' || args[2] !== '--' || args.length < 4) usage();
const cpus = Number(args[1]);
if (!(cpus > 0 && cpus <= 64)) usage('--cpus must be a number of CPUs, e.g. 1.18');
const dir = enter(root, cpus);
const child = spawn(args[3], args.slice(4), { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => {
  leave(root, dir);
  process.exit(code ?? (signal ? 128 : 1));
});
