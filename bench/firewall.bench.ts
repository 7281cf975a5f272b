/**
 * lib/firewall: one ADD and one DEL transaction through libnftables (in process, koffi) and through the nft
 * program (exec), side by side.
 *
 *  - warm: in one process, many attachments (first ADD = the no-read fast path; DEL = read + transaction);
 *  - re-ADD: an ADD of an attachment that already exists (read + reconciling transaction);
 *  - cold: a fresh Node process per operation, as a CNI plugin runs (the op's own time, and the whole process).
 *
 *   node dist/bench/run.js firewall        (NETPLUMB_BENCH_N=… to change the number of warm rounds)
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, sandboxed } from '../netns-harness/index.js';
import { addContainerRules, removeContainerRules, type ContainerFirewall, type NftBackendName } from '../lib/firewall/index.js';
import { median } from './stats.js';

await sandboxed();

const N = Number(process.env.NETPLUMB_BENCH_N ?? 100);
const COLD = 10;
const BACKENDS: NftBackendName[] = ['libnftables', 'exec'];

await run(['ip', 'link', 'add', 'br0', 'type', 'bridge']);
await run(['ip', 'addr', 'add', '10.88.0.1/16', 'dev', 'br0']);

let seq = 0;
function spec(): ContainerFirewall {
  const i = ++seq;
  return {
    containerId: `bench-${i}-${'f'.repeat(56)}`,
    ifname: 'eth0',
    network: 'bench',
    bridge: 'br0',
    ips: [`10.88.${i >> 8}.${(i & 0xff) + 1}/16`, `fd88::${i.toString(16)}/64`],
    masquerade: true,
    portMappings: [
      { hostPort: 20000 + i, containerPort: 80 },
      { hostPort: 30000 + i, containerPort: 53, protocol: 'udp' },
    ],
    spoofCheck: true,
    hostVeth: `vethb${i}`,
    mac: '02:00:00:00:00:02',
  };
}

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const p90 = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length * 0.9)]!;

async function timed(f: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await f();
  return ms(t0);
}

const results: Record<string, Record<NftBackendName, number[]>> = {};
const record = (row: string, b: NftBackendName, t: number) => (results[row] ??= { libnftables: [], exec: [] })[b].push(t);

// Warm-up: load koffi/libnftables and execa once, so the first sample is not the loader's.
for (const backend of BACKENDS) {
  const s = spec();
  await addContainerRules(s, { backend });
  await removeContainerRules(s, { backend });
}

for (let round = 0; round < N; round++) {
  for (const backend of BACKENDS) {
    const s = spec();
    record('ADD (new attachment)', backend, await timed(() => addContainerRules(s, { backend })));
    record('re-ADD (same attachment)', backend, await timed(() => addContainerRules(s, { backend })));
    record('DEL', backend, await timed(() => removeContainerRules(s, { backend })));
  }
}

// Cold: what one plugin process pays. The script prints the op's own time; the wall time includes Node.
const dir = mkdtempSync(join(tmpdir(), 'np-bench-'));
const script = join(dir, 'op.mjs');
const lib = fileURLToPath(new URL('../lib/firewall/index.js', import.meta.url));
writeFileSync(
  script,
  `const t0 = process.hrtime.bigint();
const fw = await import(${JSON.stringify(lib)});
const t1 = process.hrtime.bigint();
const { op, spec, backend } = JSON.parse(process.argv[2]);
if (op === 'add') await fw.addContainerRules(spec, { backend }); else await fw.removeContainerRules(spec, { backend });
const t2 = process.hrtime.bigint();
process.stdout.write(JSON.stringify({ load: Number(t1 - t0) / 1e6, op: Number(t2 - t1) / 1e6 }));
`,
);
for (let round = 0; round < COLD; round++) {
  for (const backend of BACKENDS) {
    const s = spec();
    for (const op of ['add', 'del'] as const) {
      const t0 = process.hrtime.bigint();
      const r = spawnSync(process.execPath, [script, JSON.stringify({ op, spec: s, backend })], { encoding: 'utf8' });
      const wall = ms(t0);
      if (r.status !== 0) throw new Error(`cold ${op} (${backend}) failed: ${r.stderr}`);
      const inner = JSON.parse(r.stdout) as { load: number; op: number };
      record(`cold ${op.toUpperCase()}: the operation`, backend, inner.op);
      record(`cold ${op.toUpperCase()}: loading lib/firewall`, backend, inner.load);
      record(`cold ${op.toUpperCase()}: whole node process`, backend, wall);
    }
  }
}

const pad = (s: string, n: number) => s.padEnd(n);
const num = (x: number) => x.toFixed(2).padStart(8);
process.stdout.write(`one transaction each (median and p90 in ms; warm: ${N} rounds, cold: ${COLD} processes)\n\n`);
process.stdout.write(`${pad('', 38)}${pad('libnftables', 20)}${pad('exec (nft)', 20)}exec / libnftables\n`);
process.stdout.write(`${pad('', 38)}${pad('  median     p90', 20)}${pad('  median     p90', 20)}\n`);
for (const [row, r] of Object.entries(results)) {
  const l = r.libnftables;
  const e = r.exec;
  process.stdout.write(`${pad(row, 38)}${num(median(l))}${num(p90(l))}    ${num(median(e))}${num(p90(e))}    ${(median(e) / median(l)).toFixed(1)}×\n`);
}
