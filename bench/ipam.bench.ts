/**
 * IPAM allocations per second, side by side in one run: netplumb in process (lib/ipam through the CNI
 * handler, as netplumb's own plugins use it), netplumb-host-local as an executable, and the reference
 * /usr/lib/cni/host-local executable; one at a time and 8 at a time; on tmpfs (the sandbox's /run) and on
 * the disk (/var/tmp: netplumb fsyncs every reservation, the reference does not). Also the plugins'
 * start-up time (VERSION, ADD) against `node` with an empty script. Every run's store is checked:
 * N distinct addresses, N reservation files.
 *
 *   node dist/bench/run.js ipam [--n 300]
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { sandboxed } from '../netns-harness/index.js';
import { hostLocal } from '../lib/modes/host-local.js';
import { parseRequest } from '../lib/cni/request.js';
import { ensurePluginBins, NETPLUMB_BIN, pool, REFERENCE_BIN } from '../test/fixtures/cni-runtime.js';

await sandboxed();
ensurePluginBins();
const { values } = parseArgs({ options: { n: { type: 'string', default: '300' } } });
const N = Number(values.n);
const OURS = join(NETPLUMB_BIN, 'netplumb-host-local');
const REF = join(REFERENCE_BIN, 'host-local');

function config(dataDir: string, cniVersion = '1.0.0') {
  return { cniVersion, name: 'bench', type: 'bridge', ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.90.0.0/20' }]] } };
}

function env(id: string, command = 'ADD'): Record<string, string> {
  return {
    PATH: process.env.PATH!,
    CNI_COMMAND: command,
    CNI_CONTAINERID: id,
    CNI_NETNS: '/proc/self/ns/net',
    CNI_IFNAME: 'eth0',
    CNI_PATH: `${NETPLUMB_BIN}:${REFERENCE_BIN}`,
  };
}

function verify(dataDir: string, what: string): void {
  const files = readdirSync(join(dataDir, 'bench')).filter((f) => /^10\./.test(f));
  if (files.length !== N) throw new Error(`${what}: ${files.length} reservation files, expected ${N}`);
}

async function inProcess(dataDir: string, width: number): Promise<number> {
  const stdin = Buffer.from(JSON.stringify(config(dataDir)));
  const t0 = performance.now();
  const got = await pool(
    Array.from({ length: N }, (_, i) => i),
    width,
    async (i) => {
      const r = await hostLocal.add(parseRequest(env(`c${i}`), stdin));
      return r.ips![0]!.address;
    },
  );
  const ms = performance.now() - t0;
  if (new Set(got).size !== N) throw new Error('in-process: duplicate addresses');
  return ms;
}

async function executable(bin: string, dataDir: string, width: number): Promise<number> {
  const input = JSON.stringify(config(dataDir));
  const t0 = performance.now();
  const got = await pool(
    Array.from({ length: N }, (_, i) => i),
    width,
    async (i) => {
      const r = await execa(bin, [], { input, env: env(`c${i}`), extendEnv: false });
      return JSON.parse(r.stdout).ips[0].address as string;
    },
  );
  const ms = performance.now() - t0;
  if (new Set(got).size !== N) throw new Error(`${bin}: duplicate addresses`);
  return ms;
}

async function median(times: number, f: () => Promise<number>): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < times; i++) xs.push(await f());
  xs.sort((a, b) => a - b);
  return xs[Math.floor(xs.length / 2)]!;
}

async function execMs(argv: string[], e: Record<string, string>, input = ''): Promise<number> {
  const t0 = performance.now();
  await execa(argv[0]!, argv.slice(1), { input, env: e, extendEnv: false });
  return performance.now() - t0;
}

const rate = (ms: number) => (N / (ms / 1000)).toFixed(0).padStart(7);
const rows: Array<[string, string, number]> = [];
const fsNames = { tmpfs: '/run', disk: '/var/tmp' } as const;

for (const [fs, base] of Object.entries(fsNames)) {
  for (const width of [1, 8]) {
    const variants: Array<[string, (d: string) => Promise<number>]> = [
      ['netplumb in process', (d) => inProcess(d, width)],
      ['netplumb-host-local exec', (d) => executable(OURS, d, width)],
      ['reference host-local exec', (d) => executable(REF, d, width)],
    ];
    for (const [name, f] of variants) {
      const dataDir = mkdtempSync(join(base, 'np-ipam-bench-'));
      try {
        const ms = await f(dataDir);
        verify(dataDir, name);
        rows.push([`${fs}, ${width} at a time`, name, ms]);
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    }
  }
}

process.stdout.write(`${N} allocations (ADD) into one /20, fresh store per run; allocations per second:\n\n`);
process.stdout.write(`  ${'store, concurrency'.padEnd(22)} ${'allocator'.padEnd(28)} ${'alloc/s'.padStart(7)}  ${'total ms'.padStart(8)}  vs reference\n`);
for (let i = 0; i < rows.length; i += 3) {
  const ref = rows[i + 2]![2];
  for (const [group, name, ms] of rows.slice(i, i + 3)) {
    process.stdout.write(`  ${group.padEnd(22)} ${name.padEnd(28)} ${rate(ms)}  ${ms.toFixed(0).padStart(8)}  ${(ref / ms).toFixed(2)}×\n`);
  }
}

// Start-up: what every exec pays before doing anything.
const empty = join(mkdtempSync('/run/np-empty-'), 'empty.mjs');
writeFileSync(empty, '');
const base = { PATH: process.env.PATH! };
const dataDir = mkdtempSync('/run/np-ipam-startup-');
const input = JSON.stringify(config(dataDir));
let k = 0;
const startup: Array<[string, number]> = [
  ['node, empty script', await median(21, () => execMs([process.execPath, empty], base))],
  ['netplumb-host-local VERSION', await median(21, () => execMs([OURS], { ...base, CNI_COMMAND: 'VERSION' }))],
  ['netplumb-host-local ADD', await median(21, () => execMs([OURS], env(`s${k++}`), input))],
  ['netplumb-host-local DEL', await median(21, () => execMs([OURS], env(`s${--k}`, 'DEL'), input))],
  ['reference host-local VERSION', await median(21, () => execMs([REF], { ...base, CNI_COMMAND: 'VERSION' }))],
  ['reference host-local ADD', await median(21, () => execMs([REF], env(`r${k++}`), input))],
];
process.stdout.write(`\nstart-up, median of 21 execs (ms):\n`);
for (const [what, ms] of startup) process.stdout.write(`  ${what.padEnd(30)} ${ms.toFixed(1).padStart(6)}\n`);
