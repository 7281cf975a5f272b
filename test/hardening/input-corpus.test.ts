/**
 * Hostile and broken input, a corpus: every plugin and verb executed (the built
 * executables, exactly as a runtime runs them) with broken stdin, broken CNI_* environment and invalid
 * configuration values. Every case must keep the refusal contract (exit 1, one error JSON with the expected
 * code whose message names the bad field, no stack trace on stdout, a log line on stderr) and leave the
 * world as it was: links, addresses, routes, rules and nftables of the host and the container namespace,
 * mounts, /run/netplumb and the IPAM stores (worldSnapshot).
 *
 * Cases run in batches between two snapshots; when a batch changes the world, its cases are re-run one at a
 * time between their own snapshots, so the change is pinned on a case rather than on the batch.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHost, diffSnapshots, execPlugin, run, sandboxed } from '../../netns-harness/index.js';
import { ensurePluginBins, pluginPath, pool } from '../fixtures/cni-runtime.js';
import { CORPUS_EVERY_PLUGIN } from '../fixtures/budget.js';
import { inputLab, settled, LAB_BRIDGE, PLUGINS, type InputLab, type PluginName } from '../fixtures/hardening.js';
import { assertRefused } from '../fixtures/assert.js';
import { BRIDGE_FIELDS } from '../../lib/modes/bridge-config.js';
import { MAX_RULES_PER_NETWORK } from '../../lib/networks/policy.js';
import { setAllowRules, type AllowRule } from '../../lib/firewall/index.js';
import { ERR } from '../../lib/errors.js';
import { assertRejects } from '../fixtures/assert.js';

await sandboxed();
ensurePluginBins();
const NETPLUMB = fileURLToPath(new URL('../../bin/netplumb.js', import.meta.url));
const lab: InputLab = await inputLab();

interface Case {
  name: string;
  plugin: PluginName;
  verb: string;
  /** changes to the runtime's environment (undefined removes a variable) */
  env?: Record<string, string | undefined>;
  /** the configuration (an object is serialised; a string or bytes are sent as they are) */
  stdin?: unknown;
  /** a change to the plugin's valid configuration */
  patch?: (c: Record<string, any>) => void;
  codes: number | number[];
  field: RegExp;
}

function stdinOf(c: Case): string | Buffer | { file: string } {
  if (c.stdin === undefined) {
    const conf = lab.config(c.plugin, c.verb);
    c.patch?.(conf);
    return JSON.stringify(conf);
  }
  if (typeof c.stdin === 'string' || Buffer.isBuffer(c.stdin)) return c.stdin;
  if (typeof c.stdin === 'object' && c.stdin !== null && 'file' in c.stdin) return c.stdin as { file: string };
  return JSON.stringify(c.stdin);
}

async function runCase(c: Case): Promise<string | undefined> {
  const env = { ...lab.env(c.plugin, c.verb), ...c.env };
  const r = await execPlugin({ file: pluginPath(c.plugin), env, stdin: stdinOf(c), timeoutMs: 10_000 });
  try {
    assert.ok(!r.timedOut, `${c.name}: timed out`);
    assertRefused(r, c.codes, c.field, `${c.plugin} ${c.verb} ${c.name}`);
    return undefined;
  } catch (e) {
    // a failure names the case and shows enough of the output to act on (IDs of 1 KiB are cut)
    return (e as Error).message.replace(/(.)\1{40,}/g, '$1$1$1…').slice(0, 900);
  }
}

/** Runs `cases` between two world snapshots; on a change, one at a time to find which case made it. */
async function runBatch(label: string, cases: Case[]): Promise<void> {
  const failures: string[] = [];
  const before = await lab.snapshot();
  const outcomes = await pool(cases, 2, runCase);
  outcomes.forEach((o) => o !== undefined && failures.push(o));
  const after = await lab.snapshot();
  const diff = diffSnapshots(before, after);
  if (diff.length > 0) {
    failures.push(`${label}: the batch changed the world:\n${diff.join('\n')}`);
    // files a case added would hide the next case's identical change: remove them before looking one by one
    lab.undoNewFiles(before);
    for (const c of cases) {
      const b = await lab.snapshot();
      await runCase(c);
      const d = diffSnapshots(b, await lab.snapshot());
      if (d.length > 0) failures.push(`${c.plugin} ${c.verb} ${c.name} changed the world:\n${d.join('\n')}`);
      lab.undoNewFiles(b);
    }
  }
  assert.ok(failures.length === 0, `${failures.length} of ${cases.length} cases broke the contract:\n${failures.join('\n\n')}`);
}

/**
 * Each hostile value once, the plugins taking turns: they share the skeleton that checks these, and each still
 * meets dozens of values. NETPLUMB_CORPUS_EVERY_PLUGIN=1 sends every value to every plugin.
 */
function spread(cases: Case[]): Case[] {
  if (CORPUS_EVERY_PLUGIN) return cases;
  const byValue = new Map<string, Case[]>();
  for (const c of cases) byValue.set(c.name, [...(byValue.get(c.name) ?? []), c]);
  return [...byValue.values()].map((group, g) => group[g % group.length]!);
}

const ATTACHMENT_VERBS = ['ADD', 'CHECK', 'DEL'] as const;
const ALL_VERBS = ['ADD', 'CHECK', 'DEL', 'GC', 'STATUS'] as const;
const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;

test('environment: CNI_COMMAND, CNI_CONTAINERID, CNI_IFNAME, CNI_ARGS (error 4 naming the variable), the plugins taking turns', async () => {
  const cases: Case[] = [];
  for (const [p, plugin] of PLUGINS.entries()) {
    cases.push(
      { name: 'no CNI_COMMAND', plugin, verb: 'ADD', env: { CNI_COMMAND: undefined }, codes: 4, field: /CNI_COMMAND/ },
      { name: 'lower-case command', plugin, verb: 'add', codes: 4, field: /CNI_COMMAND/ },
      { name: 'command with a shell suffix', plugin, verb: 'ADD; rm -rf /', codes: 4, field: /CNI_COMMAND/ },
    );
    // every value with every plugin; the verbs rotate (the skeleton's check is the same for all three)
    const verb = (i: number) => ATTACHMENT_VERBS[(i + p) % ATTACHMENT_VERBS.length]!;
    const ids = ['../../etc/passwd', 'a/b', '.hidden', ' lead', 'line\nbreak', 'x'.repeat(129), 'x'.repeat(5000), 'ünïcode', ''];
    ids.forEach((id, i) =>
      cases.push({
        name: `CNI_CONTAINERID ${JSON.stringify(id.slice(0, 20))} (${id.length})`,
        plugin,
        verb: verb(i),
        env: { CNI_CONTAINERID: id },
        codes: 4,
        field: /CNI_CONTAINERID/,
      }),
    );
    const ifnames = ['a'.repeat(16), 'eth/0', '..', '.', 'eth 0', 'eth0\n', 'eth:0', 'é'.repeat(8), 'éth0', 'eth\u00a00', 'eth\u0001', 'eth\u007f', ''];
    ifnames.forEach((ifname, i) =>
      cases.push({ name: `CNI_IFNAME ${JSON.stringify(ifname)}`, plugin, verb: verb(i), env: { CNI_IFNAME: ifname }, codes: 4, field: /CNI_IFNAME/ }),
    );
    for (const args of ['a=b=c', 'noequals', '=v', 'K=V;;']) {
      cases.push({ name: `CNI_ARGS ${JSON.stringify(args)}`, plugin, verb: 'ADD', env: { CNI_ARGS: args }, codes: 4, field: /CNI_ARGS/ });
    }
  }
  await runBatch('environment', spread(cases));
});

test("CNI_NETNS: missing, absent, a regular file, a directory, the plugin's own namespace (/proc/1/ns/net, /proc/self/ns/net)", async () => {
  const cases: Case[] = [];
  for (const plugin of ['netplumb-bridge', 'netplumb-none', 'netplumb-container', 'netplumb-host'] as const) {
    for (const verb of ['ADD', 'CHECK'] as const) {
      const patch = verb === 'CHECK' ? (c: any) => (c.prevResult = { cniVersion: '1.1.0' }) : undefined;
      cases.push(
        { name: 'no CNI_NETNS', plugin, verb, patch, env: { CNI_NETNS: undefined }, codes: 4, field: /CNI_NETNS/ },
        { name: 'CNI_NETNS absent', plugin, verb, patch, env: { CNI_NETNS: '/run/netns/does-not-exist' }, codes: 3, field: /does-not-exist/ },
        { name: 'CNI_NETNS a regular file', plugin, verb, patch, env: { CNI_NETNS: lab.regularFile }, codes: 4, field: /CNI_NETNS/ },
        { name: 'CNI_NETNS a directory', plugin, verb, patch, env: { CNI_NETNS: lab.directory }, codes: 4, field: /CNI_NETNS/ },
        { name: 'CNI_NETNS relative', plugin, verb, patch, env: { CNI_NETNS: 'proc/1/ns/net' }, codes: [3, 4], field: /CNI_NETNS|proc\/1/ },
      );
    }
    if (plugin === 'netplumb-host') {
      cases.push({
        name: "CNI_NETNS a container's namespace",
        plugin,
        verb: 'ADD',
        env: { CNI_NETNS: lab.ctr.netnsPath },
        codes: 8,
        field: /CNI_NETNS|namespace/,
      });
    } else {
      for (const own of ['/proc/1/ns/net', '/proc/self/ns/net', '/proc/thread-self/ns/net']) {
        cases.push({ name: `CNI_NETNS ${own}`, plugin, verb: 'ADD', env: { CNI_NETNS: own }, codes: 8, field: /CNI_NETNS|own network namespace/ });
      }
    }
  }
  await runBatch('CNI_NETNS', cases);
});

test('stdin: empty, truncated, not an object, deeply nested, huge and endless, bad cniVersion, bad name (plugins and verbs taking turns)', async () => {
  const big = Buffer.alloc(2 * 1024 * 1024 + 1, ' ');
  const cases: Case[] = [];
  for (const [p, plugin] of PLUGINS.entries()) {
    let i = p;
    const add = (name: string, stdin: (verb: string) => unknown, codes: number | number[], field: RegExp) => {
      const verb = ALL_VERBS[i++ % ALL_VERBS.length]!;
      cases.push({ name, plugin, verb, stdin: stdin(verb), codes, field });
    };
    const conf = (verb: string, change: Record<string, unknown>) => ({ ...lab.config(plugin, verb), ...change });
    add('empty stdin', () => '', 6, /decod|config/);
    add('truncated JSON', (v) => JSON.stringify(lab.config(plugin, v)).slice(0, 40), 6, /decod|JSON/);
    add('a JSON list', () => '[]', 6, /not a JSON object/);
    add('JSON null', () => 'null', 6, /not a JSON object/);
    add('a JSON string', () => '"cniVersion"', 6, /not a JSON object/);
    add('100 000 nested lists', () => deep(100_000), 6, /not a JSON object|decod/);
    add('100 000 nested lists as the name', (v) => `${JSON.stringify(conf(v, { name: 0 })).replace('"name":0', `"name":${deep(100_000)}`)}`, 6, /name/);
    add('100 000 nested objects as cniVersion', () => `{"cniVersion":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)},"name":"x"}`, 6, /cniVersion/);
    add('65 nested lists in an unknown key', (v) => `${JSON.stringify(conf(v, { x: 0 })).replace('"x":0', `"x":${deep(65)}`)}`, 6, /"x"/);
    add('garbage bytes', () => Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0x80]), 6, /decod/);
    add('2 MiB of spaces', () => big, 5, /stdin/);
    add('endless stdin (/dev/zero)', () => ({ file: '/dev/zero' }), 5, /stdin/);
    add('cniVersion a number', (v) => conf(v, { cniVersion: 1.1 }), 6, /cniVersion/);
    add('cniVersion unknown', (v) => conf(v, { cniVersion: '9.9.9' }), 1, /version/);
    add('cniVersion missing', (v) => conf(v, { cniVersion: undefined }), 1, /version/);
    add('name missing', (v) => conf(v, { name: undefined }), 7, /name/);
    for (const name of ['../../etc', 'a/b', '..', 'a b', 'x'.repeat(65), 'x'.repeat(300), 'tab\tname', 'ünï']) {
      add(`name ${JSON.stringify(name.slice(0, 20))} (${name.length})`, (v) => conf(v, { name }), 7, /name/);
    }
    add('name a number', (v) => conf(v, { name: 5 }), 7, /name/);
    add('prevResult a string', (v) => conf(v, { prevResult: 'garbage' }), 7, /prevResult/);
    // fields of the spec that a plugin may not use itself are still checked for their type
    add('type a number', (v) => conf(v, { type: 5 }), 7, /"type"/);
    add('capabilities not booleans', (v) => conf(v, { capabilities: { portMappings: 'yes' } }), 7, /capabilities\.portMappings/);
    add('runtimeConfig a list', (v) => conf(v, { runtimeConfig: [] }), 7, /runtimeConfig/);
    add('args a string', (v) => conf(v, { args: 'IP=10.0.0.2' }), 7, /"args"/);
    add('dns.nameservers a string', (v) => conf(v, { dns: { nameservers: '10.0.0.53' } }), 7, /dns\.nameservers/);
    add('prevResult with a bad address', (v) => conf(v, { prevResult: { cniVersion: '1.1.0', ips: [{ address: '10.0.0.300/24' }] } }), 7, /prevResult|address/);
    cases.push({ name: 'CHECK in 0.3.1', plugin, verb: 'CHECK', patch: (c) => (c.cniVersion = '0.3.1'), codes: 1, field: /version|0\.3\.1/ });
    cases.push({ name: 'GC in 1.0.0', plugin, verb: 'GC', patch: (c) => (c.cniVersion = '1.0.0'), codes: 1, field: /version|1\.0\.0/ });
    cases.push({
      name: 'GC without valid-attachments',
      plugin,
      verb: 'GC',
      patch: (c) => delete c['cni.dev/valid-attachments'],
      codes: 7,
      field: /valid-attachments/,
    });
    cases.push({
      name: 'GC with a malformed attachment',
      plugin,
      verb: 'GC',
      patch: (c) => (c['cni.dev/valid-attachments'] = [{ containerID: 5 }]),
      codes: 7,
      field: /valid-attachments/,
    });
    cases.push({
      name: 'GC with attachments not a list',
      plugin,
      verb: 'GC',
      patch: (c) => (c['cni.dev/valid-attachments'] = 'all'),
      codes: 7,
      field: /valid-attachments/,
    });
  }
  await runBatch('stdin', spread(cases));
});

/** Changes to the `ipam` section, refused by netplumb-host-local and by netplumb-bridge (which runs it). */
function ipamCases(plugin: PluginName): Case[] {
  const cases: Case[] = [];
  const add = (name: string, patch: (i: any, c: any) => void, codes: number | number[], field: RegExp, verb = 'ADD') =>
    cases.push({ name: `ipam: ${name}`, plugin, verb, patch: (c) => patch(c.ipam, c), codes, field });
  const range = (r: Record<string, unknown>) => (i: any) => (i.ranges = [[{ subnet: '10.99.0.0/24', ...r }]]);
  for (const subnet of [
    '10.0.0.0/33',
    '300.1.1.0/24',
    '10.99.0.1/24',
    'fd00::/129',
    'not-a-cidr',
    '10.99.0.0/31',
    'fd00::/127',
    '10.99.0.0',
    '10.99.0.0/-1',
    '10.99.0.0/ 24',
    '0x0a.0.0.0/8',
  ]) {
    add(`subnet ${subnet}`, range({ subnet }), 7, /subnet|small|10\.|fd00|cidr/i);
  }
  add('subnet a number', range({ subnet: 167772160 }), 7, /subnet/);
  // Addresses Go's parser refuses, which looser parsers (Node's, inet_aton) would take.
  // (a prefix length with a leading zero, `/024`, Go reads as 24: so do we)
  for (const subnet of ['010.99.0.0/24', '::ffff:10.99.0.0/120', 'fe80::%eth0/64', '10.99.0.0/24/1', ' 10.99.0.0/24']) {
    add(`subnet ${JSON.stringify(subnet)}`, range({ subnet }), 7, /subnet|cidr/i);
  }
  // (an empty gateway is no gateway, as in host-local)
  for (const gateway of ['10.99.0.256', '10.99.0.01', '10.99.0.1/24', 'fe80::1%eth0', 167772161]) {
    add(`gateway ${JSON.stringify(gateway)}`, range({ gateway }), 7, /gateway/);
  }
  for (const gw of ['10.99.0.999', 'fd00::1::2', 'gateway']) add(`route gw ${gw}`, (i) => (i.routes = [{ dst: '0.0.0.0/0', gw }]), 7, /gw|gateway|route/);
  add('a route to a bare address', (i) => (i.routes = [{ dst: '10.0.0.1' }]), 7, /route|dst/);
  add('rangeStart with a prefix', range({ rangeStart: '10.99.0.5/24' }), 7, /rangeStart/);
  add('rangeStart outside the subnet', range({ rangeStart: '10.98.0.5' }), 7, /rangeStart/);
  add('rangeStart after rangeEnd', range({ rangeStart: '10.99.0.50', rangeEnd: '10.99.0.10' }), 7, /rangeStart|rangeEnd/);
  add('IPv6 rangeStart in an IPv4 subnet', range({ rangeStart: 'fd00::5' }), 7, /rangeStart/);
  add('IPv6 gateway in an IPv4 subnet', range({ gateway: 'fd00::1' }), 7, /gateway/);
  add('IPv4 rangeEnd in an IPv6 subnet', (i) => (i.ranges = [[{ subnet: 'fd00::/64', rangeEnd: '10.99.0.9' }]]), 7, /rangeEnd/);
  add('IPv4 and IPv6 in one range set', (i) => (i.ranges = [[{ subnet: '10.99.0.0/24' }, { subnet: 'fd00::/64' }]]), 7, /range|family|protocol|IPv/i);
  add('gateway the broadcast address', range({ gateway: '10.99.0.255' }), 7, /gateway/);
  add('ranges not a list', (i) => (i.ranges = 'all'), 7, /ranges/);
  add('an empty range set', (i) => (i.ranges = [[]]), 7, /range/);
  add('a range that is a string', (i) => (i.ranges = [['10.99.0.0/24']]), 7, /range/);
  add('overlapping range sets', (i) => (i.ranges = [[{ subnet: '10.99.0.0/24' }], [{ subnet: '10.99.0.0/25' }]]), 7, /overlap/);
  add('no ranges at all', (i) => delete i.ranges, 7, /range|subnet/);
  add('dataDir relative', (i) => (i.dataDir = 'var/lib/cni'), 7, /dataDir/);
  add('dataDir a number', (i) => (i.dataDir = 5), 7, /dataDir/);
  add('routes not a list', (i) => (i.routes = 'default'), 7, /routes/);
  add('a route without dst', (i) => (i.routes = [{ gw: '10.99.0.1' }]), 7, /route|dst/);
  add('a route to a bad CIDR', (i) => (i.routes = [{ dst: '0.0.0.0/99' }]), 7, /route|dst/);
  add('resolvConf an endless device', (i) => (i.resolvConf = '/dev/zero'), 7, /resolvConf/);
  add('resolvConf a FIFO', (i) => (i.resolvConf = FIFO), 7, /resolvConf/);
  add('resolvConf a directory', (i) => (i.resolvConf = lab.directory), 7, /resolvConf/);
  add('resolvConf relative', (i) => (i.resolvConf = 'etc/resolv.conf'), 7, /resolvConf/);
  add('ipam not an object', (_i, c) => (c.ipam = 'host-local'), 7, /ipam/);
  cases.push({ name: 'CNI_ARGS IP not an address', plugin, verb: 'ADD', env: { CNI_ARGS: 'IP=10.99.0.300' }, codes: 4, field: /CNI_ARGS|IP/ });
  cases.push({ name: 'CNI_ARGS IP outside the ranges', plugin, verb: 'ADD', env: { CNI_ARGS: 'IP=10.98.0.5' }, codes: 101, field: /10\.98\.0\.5/ });
  cases.push({ name: 'CNI_ARGS IP the gateway', plugin, verb: 'ADD', env: { CNI_ARGS: 'IP=10.99.0.1' }, codes: 101, field: /10\.99\.0\.1/ });
  cases.push({ name: 'CNI_ARGS unknown key', plugin, verb: 'ADD', env: { CNI_ARGS: 'IP=10.99.0.5;K8S_POD=x' }, codes: 4, field: /CNI_ARGS/ });
  return cases;
}

const FIFO = lab.fifo;

test('IPAM configuration: invalid CIDRs and ranges, IPv4/IPv6 mixes, dataDir, routes, resolvConf (host-local and bridge)', async () => {
  await runBatch('ipam', [...ipamCases('netplumb-host-local'), ...ipamCases('netplumb-bridge')]);
});

test('plugin and IPAM types with path components; CNI_PATH relative, empty or without the plugin', async () => {
  const cases: Case[] = [];
  for (const type of ['../../../bin/sh', '/bin/sh', 'host-local/../../x', './host-local', '..', 'host local', 5, {}, ['host-local']]) {
    cases.push({
      name: `ipam.type ${JSON.stringify(type)}`,
      plugin: 'netplumb-bridge',
      verb: 'ADD',
      patch: (c) => (c.ipam.type = type),
      codes: 7,
      field: /ipam\.type/,
    });
    cases.push({
      name: `ipam.type ${JSON.stringify(type)} (DEL)`,
      plugin: 'netplumb-bridge',
      verb: 'DEL',
      patch: (c) => (c.ipam.type = type),
      codes: 7,
      field: /ipam\.type/,
    });
  }
  const hostLocal = (c: any) => (c.ipam.type = 'host-local');
  cases.push(
    { name: 'CNI_PATH relative', plugin: 'netplumb-bridge', verb: 'ADD', patch: hostLocal, env: { CNI_PATH: 'usr/lib/cni' }, codes: 4, field: /CNI_PATH/ },
    {
      name: 'CNI_PATH relative and absolute',
      plugin: 'netplumb-bridge',
      verb: 'ADD',
      patch: hostLocal,
      env: { CNI_PATH: `./bin:/usr/lib/cni` },
      codes: 4,
      field: /CNI_PATH/,
    },
    { name: 'CNI_PATH missing', plugin: 'netplumb-bridge', verb: 'ADD', patch: hostLocal, env: { CNI_PATH: undefined }, codes: 4, field: /CNI_PATH/ },
    {
      name: 'CNI_PATH a missing directory',
      plugin: 'netplumb-bridge',
      verb: 'ADD',
      patch: hostLocal,
      env: { CNI_PATH: '/nonexistent/cni' },
      codes: 104,
      field: /host-local/,
    },
    {
      name: 'CNI_PATH a regular file',
      plugin: 'netplumb-bridge',
      verb: 'ADD',
      patch: hostLocal,
      env: { CNI_PATH: lab.regularFile },
      codes: 104,
      field: /host-local/,
    },
    {
      name: 'CNI_PATH a missing directory (DEL)',
      plugin: 'netplumb-bridge',
      verb: 'DEL',
      patch: hostLocal,
      env: { CNI_PATH: '/nonexistent/cni' },
      codes: 104,
      field: /host-local/,
    },
  );
  await runBatch('types and CNI_PATH', cases);
});

test('bridge configuration: the bridge name (the uplink, too long, path-like), MTU, types, ports, VLANs, MACs', async () => {
  const cases: Case[] = [];
  const add = (name: string, patch: (c: any) => void, codes: number | number[], field: RegExp, env?: Record<string, string>) =>
    cases.push({ name, plugin: 'netplumb-bridge', verb: 'ADD', patch, codes, field, env });
  add('bridge is the uplink eth0', (c) => (c.bridge = 'eth0'), 110, /eth0/);
  add('bridge is lo', (c) => (c.bridge = 'lo'), 110, /\blo\b/);
  for (const b of ['b'.repeat(16), 'br/0', 'br 0', '..', 'br:0', 'bré0', 'br\u0001', 5, ['br0']]) {
    add(`bridge ${JSON.stringify(b)}`, (c) => (c.bridge = b), 7, /bridge/);
  }
  for (const mtu of ['1400', 70000, 67, -1, 1500.5, true, 1e300]) add(`mtu ${JSON.stringify(mtu)}`, (c) => (c.mtu = mtu), 7, /mtu/);
  // every boolean the bridge declares (its field table is what the decoder checks)
  for (const key of Object.keys(BRIDGE_FIELDS).filter((k) => BRIDGE_FIELDS[k] === 'boolean')) {
    add(`${key} a string`, (c) => (c[key] = 'yes'), 7, new RegExp(key));
  }
  add('promiscMode with hairpinMode', (c) => Object.assign(c, { promiscMode: true, hairpinMode: true }), 7, /hairpin|promisc/i);
  add('disableContainerInterface with ipam', (c) => (c.disableContainerInterface = true), 7, /disableContainerInterface/);
  add('vlan', (c) => (c.vlan = 5), 2, /vlan/);
  add('vlan out of range', (c) => (c.vlan = 5000), 7, /vlan/);
  add('vlanTrunk', (c) => (c.vlanTrunk = [{ id: 5 }]), 2, /vlanTrunk/);
  add('allowBridges not a list', (c) => (c.allowBridges = 'all'), 7, /allowBridges/);
  add('allowBridges with a path', (c) => (c.allowBridges = ['../x']), 7, /allowBridges/);
  add('dns not an object', (c) => (c.dns = 'x'), 7, /dns/);
  add('dns.nameservers not strings', (c) => (c.dns = { nameservers: [1] }), 7, /dns/);
  const pm = (m: unknown) => (c: any) => (c.runtimeConfig = { portMappings: m });
  for (const port of [0, 65536, -1, 80.5, '80', null]) {
    add(`hostPort ${JSON.stringify(port)}`, pm([{ hostPort: port, containerPort: 80, protocol: 'tcp' }]), 7, /portMappings.*hostPort|hostPort/);
    add(`containerPort ${JSON.stringify(port)}`, pm([{ hostPort: 8080, containerPort: port, protocol: 'tcp' }]), 7, /containerPort/);
  }
  add('protocol icmp', pm([{ hostPort: 8080, containerPort: 80, protocol: 'icmp' }]), 7, /protocol/);
  add('hostIP not an address', pm([{ hostPort: 8080, containerPort: 80, hostIP: '1.2.3' }]), 7, /hostIP/);
  add('portMappings not a list', pm('8080:80'), 7, /portMappings/);
  add('a port mapping not an object', pm([8080]), 7, /portMappings/);
  add('runtimeConfig.mac not a MAC', (c) => (c.runtimeConfig = { mac: 'zz:zz' }), 7, /mac/);
  add('runtimeConfig.mac multicast', (c) => (c.runtimeConfig = { mac: '01:00:5e:00:00:01' }), 7, /mac|multicast/i);
  add('CNI_ARGS MAC broadcast', () => undefined, 7, /MAC|mac/, { CNI_ARGS: 'MAC=ff:ff:ff:ff:ff:ff' });
  add('args.cni.mac zero', (c) => (c.args = { cni: { mac: '00:00:00:00:00:00' } }), 7, /mac/);
  for (const mac of ['02:00:00:00:00', '02:00:00:00:00:01:02', '2:0:0:0:0:1', '02:00-00:00:00:01', '0200.0000.0001', 42, ['02:00:00:00:00:01']]) {
    add(`runtimeConfig.mac ${JSON.stringify(mac)}`, (c) => (c.runtimeConfig = { mac }), 7, /mac/);
  }
  for (const hostIP of ['10.0.0.256', '010.0.0.1', 'fe80::1%eth0', 5]) {
    add(`hostIP ${JSON.stringify(hostIP)}`, pm([{ hostPort: 8080, containerPort: 80, hostIP }]), 7, /hostIP/);
  }
  await runBatch('bridge', cases);
});

test('modes: container names with paths, prevResult where none is allowed', async () => {
  const cases: Case[] = [];
  for (const target of ['../x', '/run/netns/../x', 'ns:/run/netns/./x', 'pid:007', '..', 5, '', 'hostile-1']) {
    cases.push({
      name: `container ${JSON.stringify(target)}`,
      plugin: 'netplumb-container',
      verb: 'ADD',
      patch: (c) => (c.container = target),
      codes: 7,
      field: /container/,
    });
  }
  // Well-formed targets that name nothing: unknown container (3), as for an unknown ID.
  for (const target of ['/run/netns/x', '4194303']) {
    cases.push({
      name: `container ${JSON.stringify(target)} (nothing there)`,
      plugin: 'netplumb-container',
      verb: 'ADD',
      patch: (c) => (c.container = target),
      codes: 3,
      field: /container/,
    });
  }
  // A file that is not a namespace, and the host's own namespace: 8.
  for (const target of ['/etc/hostname', '/run', '/proc/1/ns/net', '/proc/self/ns/net']) {
    cases.push({
      name: `container ${JSON.stringify(target)} (not a container's namespace)`,
      plugin: 'netplumb-container',
      verb: 'ADD',
      patch: (c) => (c.container = target),
      codes: 8,
      field: /container|host/,
    });
  }
  cases.push({
    name: 'NETPLUMB_CONTAINER a path',
    plugin: 'netplumb-container',
    verb: 'ADD',
    env: { CNI_ARGS: 'NETPLUMB_CONTAINER=../../x' },
    codes: 7,
    field: /NETPLUMB_CONTAINER|container/,
  });
  cases.push({ name: 'container unknown', plugin: 'netplumb-container', verb: 'ADD', codes: 3, field: /target-ctr/ });
  for (const plugin of ['netplumb-container', 'netplumb-host'] as const) {
    cases.push({
      name: 'prevResult at ADD',
      plugin,
      verb: 'ADD',
      patch: (c) => (c.prevResult = { cniVersion: '1.1.0', interfaces: [{ name: 'eth0' }] }),
      codes: 7,
      field: /prevResult/,
    });
  }
  await runBatch('modes', cases);
});

/**
 * Allow rules come through the command (and the agent, which runs the same lib/networks code): run as a user
 * runs it (without the agent) on an `--icc=false` network with two endpoints and one rule; then lib/firewall's
 * setAllowRules, whose own checks the library's callers meet. Every refusal exits with its status (or throws
 * its code) and a message naming what is wrong, and leaves the world as it was: nftables (the allow sets and
 * the records), the network's stored rules and every file under the state directory.
 */
test('policy (the command, and the library under it): rules naming unknown containers, overlapping rules, ports out of range, too many ports, rules or elements, a bad --icc', async () => {
  const state = join(lab.root, 'policy-state');
  const cli = (args: string[]) =>
    run([process.execPath, NETPLUMB, ...args], { env: { NETPLUMB_STATE_DIR: state, NETPLUMB_NO_AGENT: '1' }, check: false, timeoutMs: 60_000 });
  const ok = async (args: string[]) => {
    const r = await cli(args);
    assert.is(r.exitCode, 0, `netplumb ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const peer = await createHost('policy-peer');
  try {
    await ok(['network', 'create', 'hpol', '--subnet', '10.98.0.0/24', '--icc=false']);
    await ok(['connect', 'hpol', lab.ctr.netnsPath, '--name', 'web']);
    await ok(['connect', 'hpol', peer.netnsPath, '--name', 'db']);
    const id = await ok(['policy', 'allow', 'hpol', '--from', 'web', '--to', 'db', '--port', '80/tcp']);
    // A network at the most rules allowed: its store holds them (applying 4096 rules one by one takes minutes).
    await ok(['network', 'create', 'hfull', '--subnet', '10.97.0.0/24', '--icc=false']);
    const stored = JSON.parse(await ok(['policy', 'ls', 'hpol', '--json']))[0];
    const full = Array.from({ length: MAX_RULES_PER_NETWORK }, (_, i) => ({
      ...stored,
      id: i.toString(16).padStart(12, '0'),
      ports: [{ protocol: 'tcp', port: i + 1 }],
    }));
    await ok(['connect', 'hfull', peer.netnsPath, '--name', 'x']);
    await ok(['connect', 'hfull', lab.ctr.netnsPath, '--name', 'y']);
    writeFileSync(join(state, 'networks', 'hfull', 'policy.json'), JSON.stringify(full));

    const manyPorts = Array.from({ length: 1025 }, (_, i) => ['--port', String(i + 1)]).flat();
    const cases: [string, string[], number, RegExp][] = [
      ['an unknown source', ['hpol', '--from', 'ghost', '--to', 'db', '--port', '80'], 3, /no endpoint "ghost" on network hpol/],
      ['an unknown destination', ['hpol', '--from', 'web', '--to', 'nobody', '--port', '80'], 3, /no endpoint "nobody"/],
      ['a container ID of no endpoint', ['hpol', '--from', 'web', '--to', 'f'.repeat(64), '--port', '80'], 3, /no endpoint "f{64}"/],
      ['an unknown network', ['nonet', '--from', 'web', '--to', 'db', '--port', '80'], 3, /nonet/],
      ['port 70000', ['hpol', '--from', 'web', '--to', 'db', '--port', '70000/tcp'], 2, /PORT 1-65535/],
      ['port 0', ['hpol', '--from', 'web', '--to', 'db', '--port', '0'], 2, /PORT 1-65535/],
      ['port -1', ['hpol', '--from', 'web', '--to', 'db', '--port=-1'], 2, /PORT 1-65535/],
      ['port 80/icmp', ['hpol', '--from', 'web', '--to', 'db', '--port', '80/icmp'], 2, /PORT\[\/tcp\|udp\|sctp\]/],
      ['a rule overlapping another', ['hpol', '--from', 'web', '--to', 'db', '--port', '80/tcp', '--port', '443/tcp'], 5, new RegExp(`overlaps rule ${id}`)],
      ['a rule to itself', ['hpol', '--from', 'web', '--to', 'web', '--port', '80'], 2, /to itself/],
      ['1025 ports in one rule', ['hpol', '--from', 'web', '--to', 'db', ...manyPorts], 2, /1 to 1024 ports/],
      [
        'a rule beyond the most a network may have',
        ['hfull', '--from', 'x', '--to', 'y', '--port', '9'],
        2,
        new RegExp(`${MAX_RULES_PER_NETWORK} rules already`),
      ],
    ];
    const failures: string[] = [];
    const refuse = async ([what, args, status, msg]: (typeof cases)[number]) => {
      const r = await cli(['policy', 'allow', ...args]);
      if (r.exitCode !== status || !msg.test(r.stderr)) failures.push(`${what}: exit ${r.exitCode}, ${r.stderr.trim().slice(0, 300)}`);
    };
    // as runBatch: all between two snapshots, then one at a time if the world changed; the connections just made
    // are still settling (bridges gaining their carrier, IPv6 addresses in DAD), so start from a settled world
    const before = await settled(lab.snapshot);
    await pool(cases, 2, refuse);
    if (diffSnapshots(before, await lab.snapshot()).length > 0) {
      for (const c of cases) {
        const b = await lab.snapshot();
        await refuse(c);
        const diff = diffSnapshots(b, await lab.snapshot());
        if (diff.length > 0) failures.push(`${c[0]} changed the world:\n${diff.join('\n')}`);
      }
    }
    // The library's own checks, for its callers (lib/networks checks first, so the command never reaches them).
    const net = JSON.parse(await ok(['network', 'inspect', 'hpol', '--json']))[0];
    const addr = (name: string) => (Object.values(net.containers) as any[]).find((x) => x.name === name).ipv4Address.split('/')[0];
    const good: AllowRule = { from: [addr('web')], to: [addr('db')], ports: [{ protocol: 'tcp', port: 80 }] };
    const tcp = (...ports: number[]) => ports.map((port) => ({ protocol: 'tcp', port }));
    const libCases: [string, unknown, string, RegExp][] = [
      ['port 0', [{ ...good, ports: tcp(0) }], ERR.INVALID_ARG_VALUE, /port 0 must be an integer 1-65535/],
      ['port 65536', [{ ...good, ports: tcp(65536) }], ERR.INVALID_ARG_VALUE, /port 65536/],
      ['protocol icmp', [{ ...good, ports: [{ protocol: 'icmp', port: 1 }] }], ERR.INVALID_ARG_VALUE, /must be tcp, udp or sctp/],
      ['no port', [{ ...good, ports: [] }], ERR.INVALID_ARG_VALUE, /names no port/],
      ['a name, not an address', [{ ...good, from: ['web'] }], ERR.INVALID_ADDRESS, /"web" in "rules\[0\].from" is not an IP address/],
      ['overlapping rules', [good, { ...good, ports: tcp(80, 81) }], ERR.INVALID_ARG_VALUE, /rule 1 overlaps rule 0/],
      ['an address no container holds', [{ ...good, to: ['10.98.0.200'] }], ERR.NOT_FOUND, /no container on an icc: false network holds 10\.98\.0\.200/],
      [
        'too many elements',
        [{ ...good, ports: Array.from({ length: 30000 }, (_, i) => ({ protocol: 'udp', port: (i % 65535) + 1 })) }],
        ERR.INVALID_ARG_VALUE,
        /too many to be reasonable/,
      ],
    ];
    for (const [what, rules, code, message] of libCases) {
      await assertRejects(setAllowRules(net.bridge, rules as AllowRule[]), { code, message }, what).catch((e: Error) => failures.push(e.message));
    }
    const changed = async (what: string) => {
      const diff = diffSnapshots(before, await settled(lab.snapshot));
      if (diff.length > 0) failures.push(`${what} changed the world:\n${diff.join('\n')}`);
    };
    await changed('a refused setAllowRules');
    const icc = await cli(['network', 'create', 'hopen', '--subnet', '10.96.0.0/24', '--icc', 'maybe']);
    if (icc.exitCode !== 2 || !/icc/.test(icc.stderr)) failures.push(`--icc maybe: exit ${icc.exitCode}, ${icc.stderr.trim()}`);
    await changed('--icc maybe');
    assert.equal(failures, []);
  } finally {
    for (const [net, name] of [
      ['hpol', 'web'],
      ['hpol', 'db'],
      ['hfull', 'x'],
      ['hfull', 'y'],
    ])
      await cli(['disconnect', net!, name!]);
    for (const net of ['hpol', 'hfull']) await cli(['network', 'rm', net]);
    await peer.destroy();
    rmSync(state, { recursive: true, force: true });
  }
});

test('the bridge ADD refused for the uplink leaves no IPAM trace (last_reserved_ip not advanced) and the uplink untouched', async () => {
  // Covered by the batch above through the dataDir snapshot; this names it on its own so a regression is clear.
  await runBatch('uplink', [
    { name: 'bridge is the uplink eth0', plugin: 'netplumb-bridge', verb: 'ADD', patch: (c) => (c.bridge = 'eth0'), codes: 110, field: /eth0/ },
  ]);
  const r = await execPlugin({
    file: pluginPath('netplumb-bridge'),
    env: lab.env('netplumb-bridge', 'ADD'),
    stdin: JSON.stringify(lab.config('netplumb-bridge')),
  });
  assert.is(r.exitCode, 0, `a valid ADD works in this lab: ${r.stdout} ${r.stderr}`);
  const del = await execPlugin({
    file: pluginPath('netplumb-bridge'),
    env: lab.env('netplumb-bridge', 'DEL'),
    stdin: JSON.stringify(lab.config('netplumb-bridge')),
  });
  assert.is(del.exitCode, 0, del.stdout);
  assert.ok(r.json.interfaces[0].name === LAB_BRIDGE);
});

test.run();
