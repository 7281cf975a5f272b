/**
 * Least privilege, capabilities: every plugin run as uid 0 with every capability dropped
 * but CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_NET_RAW (setpriv: bounding, inheritable and ambient sets), and
 * what happens with CAP_NET_ADMIN or CAP_SYS_ADMIN missing. The test's own (sandbox) namespace is the host;
 * containers are `ip netns add` files in /run/netns (the sandbox's tmpfs), as runtimes make them — a
 * /proc/PID/ns/net path of a process with more capabilities than the plugin cannot be opened without
 * CAP_SYS_PTRACE (the kernel's ptrace access check), which is also tested.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createHost, diffSnapshots, execPlugin, must, run, sandboxed, waitFor } from '../../netns-harness/index.js';
import { ensurePluginBins, NETPLUMB_BIN, pluginPath } from '../fixtures/cni-runtime.js';
import { bridgeConf as labBridgeConf } from '../fixtures/bridge-lab.js';
import { noDad, settled, STATE_ROOT, worldSnapshot, type PluginName } from '../fixtures/hardening.js';
import { assertRefused } from '../fixtures/assert.js';

await sandboxed();
ensurePluginBins();
noDad();

/** setpriv's arguments keeping only `caps` (names without CAP_): in every set a child process can inherit. */
function onlyCaps(...caps: string[]): string[] {
  const list = ['-all', ...caps.map((c) => `+${c}`)].join(',');
  return ['setpriv', `--inh-caps=${list}`, `--ambient-caps=${list}`, `--bounding-set=${list}`, '--'];
}
const LEAST = onlyCaps('net_admin', 'sys_admin', 'net_raw');
const CAP = { net_admin: 12, sys_admin: 21, net_raw: 13 } as const;

const root = mkdtempSync('/run/np-priv-');
const dataDir = join(root, 'ipam');
const cniPath = `${NETPLUMB_BIN}:/usr/lib/cni`;

async function netnsAdd(name: string): Promise<string> {
  await run(['ip', 'netns', 'add', name]);
  return `/run/netns/${name}`;
}

const bridgeConf = (extra: Record<string, unknown> = {}) =>
  labBridgeConf({
    name: 'privnet',
    bridge: 'privbr0',
    isGateway: true,
    ipMasq: true,
    capabilities: { portMappings: true },
    subnet: '10.98.0.0/24',
    routes: [{ dst: '0.0.0.0/0' }],
    dataDir,
    ...extra,
  });

async function exec(plugin: PluginName, verb: string, conf: unknown, att: { id?: string; netns?: string; ifname?: string } = {}, wrapper = LEAST) {
  const env = { CNI_COMMAND: verb, CNI_CONTAINERID: att.id, CNI_NETNS: att.netns, CNI_IFNAME: att.ifname ?? (att.id ? 'eth0' : undefined), CNI_PATH: cniPath };
  return execPlugin({ file: pluginPath(plugin), env, stdin: JSON.stringify(conf), wrapper });
}

test('the wrapper leaves exactly CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_NET_RAW (effective, permitted, bounding)', async () => {
  const r = await run([...LEAST, 'cat', '/proc/self/status']);
  const mask = (k: string) => BigInt(`0x${new RegExp(`^Cap${k}:\\s+([0-9a-f]+)$`, 'm').exec(r.stdout)![1]}`);
  const want = (1n << BigInt(CAP.net_admin)) | (1n << BigInt(CAP.sys_admin)) | (1n << BigInt(CAP.net_raw));
  for (const k of ['Eff', 'Prm', 'Bnd']) assert.is(mask(k), want, `Cap${k}`);
});

test('netplumb-bridge ADD, CHECK, DEL with IPAM, masquerade and a published port under the three capabilities; two containers ping', async () => {
  const a = await netnsAdd('cap-a');
  const b = await netnsAdd('cap-b');
  const conf = bridgeConf({ runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] } });
  const ra = must(await exec('netplumb-bridge', 'ADD', conf, { id: 'cap-a', netns: a }), 'ADD a').json;
  const rb = must(await exec('netplumb-bridge', 'ADD', bridgeConf(), { id: 'cap-b', netns: b }), 'ADD b').json;
  must(await exec('netplumb-bridge', 'CHECK', { ...conf, prevResult: ra }, { id: 'cap-a', netns: a }), 'CHECK a');
  const ipB = rb.ips[0].address.split('/')[0];
  const ping = await run(['ip', 'netns', 'exec', 'cap-a', 'ping', '-c', '1', '-W', '2', ipB], { check: false });
  assert.is(ping.exitCode, 0, `ping a → b: ${ping.stdout} ${ping.stderr}`);
  const nft = await run(['nft', 'list', 'ruleset']);
  assert.match(nft.stdout, /8080/, 'the published port is in the ruleset');
  assert.match(nft.stdout, /masquerade/);
  must(await exec('netplumb-bridge', 'DEL', { ...conf, prevResult: ra }, { id: 'cap-a', netns: a }), 'DEL a');
  must(await exec('netplumb-bridge', 'DEL', bridgeConf(), { id: 'cap-b', netns: b }), 'DEL b');
  const veths = (JSON.parse((await run(['ip', '-j', 'link', 'show', 'master', 'privbr0'])).stdout) as any[]).map((l) => l.ifname);
  assert.equal(veths, [], 'DEL removed both veths');
  assert.equal(
    readdirSync(join(dataDir, 'privnet')).filter((f) => /^\d/.test(f)),
    [],
    'DEL released both addresses',
  );
});

test('netplumb-none, -container, -host and -host-local under the three capabilities', async () => {
  const target = await netnsAdd('cap-t');
  const joiner = await netnsAdd('cap-j');
  const none = { cniVersion: '1.1.0', name: 'privlo', type: 'netplumb-none' };
  const r = must(await exec('netplumb-none', 'ADD', none, { id: 'cap-t', netns: target }), 'none ADD').json;
  must(await exec('netplumb-none', 'CHECK', { ...none, prevResult: r }, { id: 'cap-t', netns: target }), 'none CHECK');
  // CHECK only reads: CAP_SYS_ADMIN (to enter the namespace) is enough, and without it the refusal names it.
  must(
    await exec('netplumb-none', 'CHECK', { ...none, prevResult: r }, { id: 'cap-t', netns: target }, onlyCaps('sys_admin')),
    'none CHECK with CAP_SYS_ADMIN alone',
  );
  assertRefused(
    await exec('netplumb-none', 'CHECK', { ...none, prevResult: r }, { id: 'cap-t', netns: target }, onlyCaps('net_admin')),
    107,
    /CAP_SYS_ADMIN/,
    'none CHECK without CAP_SYS_ADMIN',
  );

  const join_ = { cniVersion: '1.1.0', name: 'privjoin', type: 'netplumb-container', container: 'cap-t' };
  const rj = must(await exec('netplumb-container', 'ADD', join_, { id: 'cap-j', netns: joiner }), 'container ADD (a bind mount: CAP_SYS_ADMIN)').json;
  must(await exec('netplumb-container', 'CHECK', { ...join_, prevResult: rj }, { id: 'cap-j', netns: joiner }), 'container CHECK');
  const same = await run(['stat', '-L', '-c', '%i', target, joiner]);
  const [i1, i2] = same.stdout.trim().split('\n');
  assert.is(i1, i2, "the joiner's file is the target's namespace");
  must(await exec('netplumb-container', 'DEL', join_, { id: 'cap-j', netns: joiner }), 'container DEL');
  must(await exec('netplumb-none', 'DEL', none, { id: 'cap-t', netns: target }), 'none DEL');

  const host = { cniVersion: '1.1.0', name: 'privhost', type: 'netplumb-host' };
  const rh = must(await exec('netplumb-host', 'ADD', host, { id: 'cap-h', netns: '/proc/self/ns/net' }), 'host ADD').json;
  assert.ok(rh.interfaces.length >= 0);
  must(await exec('netplumb-host', 'DEL', host, { id: 'cap-h', netns: '/proc/self/ns/net' }), 'host DEL');

  const hl = {
    cniVersion: '1.1.0',
    name: 'privipam',
    type: 'netplumb-host-local',
    ipam: { type: 'netplumb-host-local', dataDir, ranges: [[{ subnet: '10.97.0.0/24' }]] },
  };
  const ri = must(await exec('netplumb-host-local', 'ADD', hl, { id: 'cap-i', netns: target }), 'host-local ADD').json;
  assert.is(ri.ips[0].address, '10.97.0.2/24');
  must(await exec('netplumb-host-local', 'DEL', hl, { id: 'cap-i', netns: target }), 'host-local DEL');
});

test('netplumb-bridge needs no CAP_NET_RAW: the gratuitous ARP goes through arp_notify, not a packet socket', async () => {
  const c = await netnsAdd('cap-r');
  const r = must(
    await exec('netplumb-bridge', 'ADD', bridgeConf(), { id: 'cap-r', netns: c }, onlyCaps('net_admin', 'sys_admin')),
    'ADD without CAP_NET_RAW',
  ).json;
  // the bridge learnt the container's MAC from the announcement: a frame left the container without traffic
  const mac = r.interfaces[2].mac;
  let fdb = '';
  await waitFor(async () => (fdb = (await run(['bridge', 'fdb', 'show', 'br', 'privbr0'])).stdout).includes(mac));
  assert.ok(fdb.includes(mac), `the bridge learnt ${mac}: ${fdb}`);
  must(await exec('netplumb-bridge', 'DEL', bridgeConf(), { id: 'cap-r', netns: c }, onlyCaps('net_admin', 'sys_admin')), 'DEL without CAP_NET_RAW');
});

test('without CAP_NET_ADMIN or CAP_SYS_ADMIN: a CNI error that names the missing privilege, not a stack trace, and nothing changed', async () => {
  const c = await netnsAdd('cap-n');
  const world = () => worldSnapshot({ namespaces: [undefined, c], dirs: [root, STATE_ROOT] });
  const noNetAdmin = onlyCaps('sys_admin', 'net_raw');
  const noSysAdmin = onlyCaps('net_admin', 'net_raw');
  const before = await settled(world);
  const cases: Array<[string, PluginName, unknown, string[]]> = [
    ['bridge ADD without CAP_NET_ADMIN', 'netplumb-bridge', bridgeConf({ bridge: 'nopriv0' }), noNetAdmin],
    ['none ADD without CAP_NET_ADMIN', 'netplumb-none', { cniVersion: '1.1.0', name: 'privlo2', type: 'netplumb-none' }, noNetAdmin],
    ['bridge ADD without CAP_SYS_ADMIN', 'netplumb-bridge', bridgeConf({ bridge: 'nopriv0' }), noSysAdmin],
    [
      'container ADD without CAP_SYS_ADMIN',
      'netplumb-container',
      { cniVersion: '1.1.0', name: 'privjoin2', type: 'netplumb-container', container: 'x' },
      noSysAdmin,
    ],
    ['none DEL without CAP_NET_ADMIN', 'netplumb-none', { cniVersion: '1.1.0', name: 'privlo2', type: 'netplumb-none' }, noNetAdmin],
  ];
  for (const [what, plugin, conf, wrapper] of cases) {
    const r = await exec(plugin, what.includes(' DEL ') ? 'DEL' : 'ADD', conf, { id: 'cap-n', netns: c }, wrapper);
    assertRefused(r, 107, what.includes('NET_ADMIN') ? /CAP_NET_ADMIN/ : /CAP_SYS_ADMIN/, what);
    assert.equal(diffSnapshots(before, await world()), [], `${what} changed the world`);
  }
});

test('a /proc/PID/ns/net of a process with more capabilities cannot be opened (ptrace access check): a clear CNI error', async () => {
  const h = await createHost('privileged-holder');
  const ctr = await h.createContainer('c');
  const r = await exec('netplumb-bridge', 'ADD', bridgeConf({ bridge: 'nopriv1' }), { id: 'cap-p', netns: ctr.netnsPath });
  assertRefused(r, 107, /CNI_NETNS .* cannot be opened \(EACCES\)/, "bridge ADD into a more privileged process's namespace");
  await h.destroy();
});

test.run();
