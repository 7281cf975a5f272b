/**
 * A property-based fuzzer (fast-check) over the stdin configuration and the CNI_*
 * environment of every plugin and verb: valid configurations mutated (wrong types, unknown and prototype
 * keys, invalid CIDRs and ranges, path-like names, out-of-range numbers), truncated or prefixed JSON, hostile
 * environments. Each run executes the built plugin in the test's namespace (the "host") and checks:
 *
 *   - the exit status is 0 or 1, never a signal, a timeout or anything else;
 *   - status 1: stdout is exactly one well-formed CNI error with a specific code (999, "internal error", is
 *     a finding: hostile input deserves a precise answer), no stack trace on stdout, a log line on stderr,
 *     and the world (links, addresses, routes, rules, nftables, mounts, IPAM stores, /run/netplumb) unchanged;
 *   - status 0: the input was valid; an ADD is followed by DEL (as a runtime does), which must succeed and
 *     leave nothing but what persists by design (a bridge, a store's directory, lock and last_reserved_ip).
 *
 * The seed and the number of runs are printed; NETPLUMB_FUZZ_SEED and NETPLUMB_FUZZ_RUNS replay a run.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { diffSnapshots, execPlugin, sandboxed, type Snapshot } from '../../netns-harness/index.js';
import { ensurePluginBins, pluginPath } from '../fixtures/cni-runtime.js';
import { inputLab, settled, LAB_BRIDGE, PLUGINS, refusalCode, STATE_ROOT, VERBS, type PluginName } from '../fixtures/hardening.js';
import { FUZZ_RUNS as RUNS, seedFrom } from '../fixtures/budget.js';

await sandboxed();
ensurePluginBins();
const lab = await inputLab();

const SEED = seedFrom('NETPLUMB_FUZZ_SEED');

// ── arbitraries ─────────────────────────────────────────────────────────────────────────────────────────

const hostileString = fc.oneof(
  fc.constantFrom(
    '',
    '../x',
    '../../etc/passwd',
    '/etc/passwd',
    'a/b',
    '..',
    '.',
    'x y',
    'é',
    'eth\u0001',
    'a'.repeat(300),
    'eth0',
    'lo',
    '10.0.0.0/33',
    '10.99.0.1/24',
    '300.1.1.1',
    'fd00::/129',
    'fd00::1',
    '10.99.0.0/24',
    '10.99.0.200',
    '0.0.0.0/0',
    'tcp',
    'icmp',
    'ff:ff:ff:ff:ff:ff',
    '02:00:00:00:00:01',
    'true',
    '1400',
    '0',
    '-1',
    '1.1.0',
    '0.3.1',
    'host-local',
    'nftables',
  ),
  fc.string({ maxLength: 24 }),
);
const leaf = fc.oneof(
  hostileString,
  fc.constant(null),
  fc.boolean(),
  fc.integer({ min: -2, max: 70_000 }),
  fc.constantFrom(0, 1, 68, 1500, 65535, 65536, 4094, 4095, 2 ** 31, -(2 ** 31), 1e300, 0.5),
);
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: leaf },
  { weight: 1, arbitrary: fc.array(leaf, { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.constantFrom('subnet', 'type', 'dst', 'gw', 'hostPort', 'containerPort', 'protocol', 'x'), leaf, { maxKeys: 3 }) },
);
const portMapping = fc.record(
  {
    hostPort: fc.oneof(fc.integer({ min: -1, max: 70_000 }), leaf),
    containerPort: fc.oneof(fc.integer({ min: -1, max: 70_000 }), leaf),
    protocol: fc.oneof(fc.constantFrom('tcp', 'udp', 'sctp', 'icmp', ''), leaf),
  },
  { requiredKeys: [] },
);

/** Keys that may be changed, with what they may become (dataDir only inside the watched lab directory). */
const PATHS: Array<[string, fc.Arbitrary<unknown>]> = [
  ...[
    'cniVersion',
    'name',
    'type',
    'bridge',
    'mtu',
    'isGateway',
    'isDefaultGateway',
    'ipMasq',
    'hairpinMode',
    'promiscMode',
    'forceAddress',
    'macspoofchk',
    'enabledad',
    'isolate',
    'allowBridges',
    'vlan',
    'vlanTrunk',
    'dns',
    'container',
    'prevResult',
    'args',
    'capabilities',
    'cni.dev/valid-attachments',
    'ipam',
    'ipam.routes',
    'ipam.ranges',
    'ipam.subnet',
    'ipam.rangeStart',
    'ipam.gateway',
    'ipam.ranges.0.0.subnet',
    'ipam.ranges.0.0.rangeStart',
    'ipam.ranges.0.0.rangeEnd',
    'ipam.ranges.0.0.gateway',
    'ipam.ranges.1',
    'runtimeConfig.mac',
    'runtimeConfig.ips',
    'runtimeConfig.ipRanges',
    '__proto__',
    'constructor',
    'x-unknown.deep',
  ].map((p): [string, fc.Arbitrary<unknown>] => [p, hostileValue]),
  ['ipam.type', fc.constantFrom('netplumb-host-local', 'host-local', '../x', '/bin/sh', 'no-such-plugin', '', 5, null, 'a b')],
  ['ipam.dataDir', fc.constantFrom(lab.dataDir, `${lab.root}/other`, `${lab.root}/regular-file`, `${lab.root}/fifo`, 'relative', '', 5)],
  ['ipam.resolvConf', fc.constantFrom('/etc/resolv.conf', '/dev/zero', lab.fifo, lab.directory, '/nonexistent', 'relative', 7)],
  ['runtimeConfig.portMappings', fc.oneof(fc.array(portMapping, { maxLength: 2 }), hostileValue)],
];

type Mutation = { path: string; value: unknown } | { path: string; remove: true };
const mutation: fc.Arbitrary<Mutation> = fc.integer({ min: 0, max: PATHS.length - 1 }).chain((i) => {
  const [path, values] = PATHS[i]!;
  return fc.oneof(
    { weight: 4, arbitrary: values.map((value): Mutation => ({ path, value })) },
    { weight: 1, arbitrary: fc.constant<Mutation>({ path, remove: true }) },
  );
});

const validEnv = { containerId: 'fz-1', ifname: 'eth0', netns: 'ctr', args: '', path: 'default' } as const;
const hostileEnv = fc.record({
  containerId: fc.constantFrom('fz-1', 'fz-1', 'fz-2', '../x', '', 'x'.repeat(200), 'a b', undefined),
  ifname: fc.constantFrom('eth0', 'eth0', 'net1', 'a'.repeat(16), 'e/0', '..', 'é', '', undefined),
  netns: fc.constantFrom('ctr', 'ctr', 'ctr', 'own', 'file', 'dir', 'missing', 'empty', 'unset'),
  args: fc.constantFrom('', '', 'IP=10.99.0.7', 'IP=10.99.0.1', 'IP=fd00::5', 'IgnoreUnknown=1;K8S_POD=x', 'a=b=c', 'MAC=zz', 'NETPLUMB_CONTAINER=../x'),
  path: fc.constantFrom('default', 'default', 'relative', 'empty', '/nonexistent'),
});
// Mostly a valid environment, so that most runs get past the skeleton into the configuration's checks
type Env = typeof hostileEnv extends fc.Arbitrary<infer T> ? T : never;
const envArb: fc.Arbitrary<Env> = fc.oneof({ weight: 3, arbitrary: fc.constant<Env>(validEnv) }, { weight: 2, arbitrary: hostileEnv });

const inputArb = fc.record({
  plugin: fc.constantFrom(...PLUGINS),
  verb: fc.constantFrom(...VERBS),
  mutations: fc.array(mutation, { minLength: 0, maxLength: 4 }),
  env: envArb,
  framing: fc.oneof(
    { weight: 8, arbitrary: fc.constant<{ kind: 'json' }>({ kind: 'json' }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 200 }).map((n) => ({ kind: 'truncate' as const, n })) },
    { weight: 1, arbitrary: fc.constantFrom('\u0000', 'garbage', '{}', '\ufeff').map((p) => ({ kind: 'prefix' as const, p })) },
  ),
});
type Input = typeof inputArb extends fc.Arbitrary<infer T> ? T : never;

// ── one run ─────────────────────────────────────────────────────────────────────────────────────────────

function apply(conf: Record<string, any>, m: Mutation): void {
  const keys = m.path === 'cni.dev/valid-attachments' ? [m.path] : m.path.split('.');
  let o: any = conf;
  for (const k of keys.slice(0, -1)) {
    if (typeof o[k] !== 'object' || o[k] === null) Object.defineProperty(o, k, { value: {}, enumerable: true, writable: true, configurable: true });
    o = o[k];
  }
  const last = keys[keys.length - 1]!;
  if ('remove' in m) delete o[last];
  // defineProperty: `__proto__` and `constructor` become own keys, as JSON.parse makes them
  else Object.defineProperty(o, last, { value: m.value, enumerable: true, writable: true, configurable: true });
}

function stdinOf(input: Input): string {
  const conf = lab.config(input.plugin as PluginName, input.verb);
  for (const m of input.mutations) apply(conf, m);
  const text = JSON.stringify(conf) ?? '';
  const f = input.framing;
  if (f.kind === 'truncate') return text.slice(0, f.n);
  if (f.kind === 'prefix') return f.p + text;
  return text;
}

function envOf(input: Input): Record<string, string | undefined> {
  const e = input.env;
  const env = lab.env(input.plugin as PluginName, input.verb);
  env.CNI_CONTAINERID = e.containerId;
  if (e.ifname !== 'eth0') env.CNI_IFNAME = e.ifname;
  const netns: Record<string, string | undefined> = {
    ctr: env.CNI_NETNS,
    own: '/proc/1/ns/net',
    file: `${lab.root}/regular-file`,
    dir: lab.directory,
    missing: '/run/netns/nope',
    empty: '',
    unset: undefined,
  };
  env.CNI_NETNS = netns[e.netns];
  env.CNI_ARGS = e.args === '' ? undefined : e.args;
  env.CNI_PATH = { default: env.CNI_PATH, relative: 'dist/plugins', empty: '', '/nonexistent': '/nonexistent' }[e.path];
  return env;
}

/** What persists by design after ADD + DEL: a store's directory, lock and round-robin pointer. */
function persistent(s: Snapshot): Snapshot {
  const out: Snapshot = {};
  for (const [k, v] of Object.entries(s)) {
    const ipamFiles = k.startsWith('files under ') && !k.endsWith(STATE_ROOT);
    out[k] = ipamFiles
      ? v
          .split('\n')
          .filter((l) => !/^(\S*\/)?(lock|last_reserved_ip\.\d+) |\/ dir \d+$/.test(l))
          .join('\n')
      : v;
  }
  return out;
}

let baseline: Snapshot;

const stats = { runs: 0, refused: 0, succeeded: 0, codes: new Map<number, number>() };

async function check(input: Input): Promise<void> {
  stats.runs++;
  const env = envOf(input);
  const stdin = stdinOf(input);
  const what = `${input.plugin} ${input.verb} env=${JSON.stringify(env)} stdin=${stdin.slice(0, 600)}`;
  const r = await execPlugin({ file: pluginPath(input.plugin), env, stdin, timeoutMs: 15_000 });
  assert.ok(!r.timedOut, `${what}: timed out`);
  assert.ok(r.exitCode === 0 || r.exitCode === 1, `${what}: exit status ${r.exitCode}: ${r.stdout} ${r.stderr}`);
  assert.not.match(r.stdout, /\n\s+at |\bat [^\s]+\.c?js:\d+/, `${what}: a stack trace on stdout`);
  if (r.exitCode === 1) {
    stats.refused++;
    const code = refusalCode(r);
    assert.ok(code !== undefined, `${what}: status 1 without a well-formed CNI error: ${r.stdout}`);
    stats.codes.set(code!, (stats.codes.get(code!) ?? 0) + 1);
    assert.ok(code !== 999, `${what}: internal error 999 (an unanticipated failure): ${r.stdout} ${r.stderr.slice(0, 1500)}`);
    assert.ok(r.stderr.trim() !== '', `${what}: nothing logged on stderr`);
    const d = diffSnapshots(baseline, await lab.snapshot());
    assert.ok(d.length === 0, `${what}: refused (${r.stdout.trim()}) but changed the world:\n${d.join('\n')}`);
    return;
  }
  stats.succeeded++;
  if (input.verb === 'ADD') {
    const del = await execPlugin({ file: pluginPath(input.plugin), env: { ...env, CNI_COMMAND: 'DEL' }, stdin, timeoutMs: 15_000 });
    assert.is(del.exitCode, 0, `${what}: ADD succeeded but DEL failed: ${del.stdout} ${del.stderr}`);
  }
  const after = await settled(lab.snapshot);
  const d = diffSnapshots(persistent(baseline), persistent(after));
  assert.ok(d.length === 0, `${what}: succeeded (${r.stdout.slice(0, 300)}), but after DEL the world is not as before:\n${d.join('\n')}`);
  baseline = after;
}

test(`fuzz: every plugin and verb, mutated configurations and environments (seed ${SEED}, ${RUNS} runs)`, async () => {
  // The bridges and the nftables skeleton that any valid ADD leaves (by design) exist from the start.
  for (const bridge of [LAB_BRIDGE, undefined]) {
    const conf = lab.config('netplumb-bridge');
    if (bridge === undefined) delete conf.bridge;
    const env = lab.env('netplumb-bridge', 'ADD');
    for (const verb of ['ADD', 'DEL']) {
      const r = await execPlugin({ file: pluginPath('netplumb-bridge'), env: { ...env, CNI_COMMAND: verb }, stdin: JSON.stringify(conf) });
      assert.is(r.exitCode, 0, `warm-up ${verb}: ${r.stdout} ${r.stderr}`);
    }
  }
  for (const verb of ['ADD', 'DEL']) {
    const r = await execPlugin({ file: pluginPath('netplumb-none'), env: lab.env('netplumb-none', verb), stdin: JSON.stringify(lab.config('netplumb-none')) });
    assert.is(r.exitCode, 0, `warm-up none ${verb}: ${r.stdout} ${r.stderr}`);
  }
  baseline = await settled(lab.snapshot);
  console.log(`  fuzz: seed=${SEED} runs=${RUNS} (replay: NETPLUMB_FUZZ_SEED=${SEED} NETPLUMB_FUZZ_RUNS=${RUNS})`);
  try {
    // No shrinking: every step is a real exec; the failing input is printed whole instead.
    await fc.assert(fc.asyncProperty(inputArb, check), { seed: SEED, numRuns: RUNS, endOnFailure: true });
  } catch (e) {
    // fast-check keeps the property's own assertion as the cause: show both
    const cause = (e as { cause?: unknown }).cause;
    throw new Error(`${(e as Error).message}\n${cause instanceof Error ? cause.message : String(cause)}`, { cause: e });
  } finally {
    const codes = [...stats.codes]
      .sort((a, b) => a[0] - b[0])
      .map(([c, n]) => `${c}×${n}`)
      .join(' ');
    console.log(`  fuzz: ${stats.runs} runs, ${stats.refused} refused (codes ${codes}), ${stats.succeeded} succeeded; seed=${SEED}`);
  }
  assert.ok(stats.refused > RUNS / 4 && stats.succeeded > 0, 'the generator produces both refusals and valid inputs');
});

test.run();
