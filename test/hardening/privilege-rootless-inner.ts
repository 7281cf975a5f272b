/**
 * The inside of test/hardening/privilege-rootless.test.ts: runs as an unprivileged user who made a user
 * namespace (root there, nobody outside) with its own network and mount namespaces, as rootless podman and
 * rootlesskit do, and prints one JSON report of what the plugins did there (bridge, container joining the
 * bridge's container, none). Not a test file itself.
 *
 * argv: <dir with ipam/ and hostns (a bind mount of a namespace the user namespace does not own)>
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execPlugin, run } from '../../netns-harness/index.js';
import { NETPLUMB_BIN, treeSnapshot } from '../fixtures/cni-runtime.js';
import { type PluginName } from '../fixtures/hardening.js';

const dir = process.argv[2]!;
const dataDir = join(dir, 'ipam');
const report: Record<string, unknown> = {};
const status = readFileSync('/proc/self/status', 'utf8');
report.uidMap = readFileSync('/proc/self/uid_map', 'utf8').trim();
report.capEff = /^CapEff:\s+(\S+)$/m.exec(status)?.[1];

// Private, writable state for this user namespace: the directories exist (made by the real root) and
// tmpfs mounts over them are ours.
for (const d of ['/run/netns', '/run/netplumb', dataDir]) await run(['mount', '-t', 'tmpfs', '-o', 'mode=0755', 'tmpfs', d]);
await run(['ip', 'link', 'set', 'lo', 'up']);
await run(['ip', 'netns', 'add', 'rl1']);
await run(['ip', 'netns', 'add', 'rl2']);

const bridge = {
  cniVersion: '1.1.0',
  name: 'rootless',
  type: 'netplumb-bridge',
  bridge: 'rlbr0',
  isGateway: true,
  ipMasq: true,
  capabilities: { portMappings: true },
  runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] },
  ipam: { type: 'netplumb-host-local', dataDir, ranges: [[{ subnet: '10.95.0.0/24' }]], routes: [{ dst: '0.0.0.0/0' }] },
};
const none = { cniVersion: '1.1.0', name: 'rootless-lo', type: 'netplumb-none' };

async function step(name: string, plugin: PluginName, verb: string, conf: unknown, id: string, netns: string) {
  const r = await execPlugin({
    file: join(NETPLUMB_BIN, plugin),
    env: { CNI_COMMAND: verb, CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: NETPLUMB_BIN },
    stdin: JSON.stringify(conf),
  });
  report[name] = { exitCode: r.exitCode, stdout: r.stdout.trim(), stderr: r.stderr.trim().slice(0, 2000) };
  return r.exitCode === 0 && r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
}

const add = await step('bridge ADD', 'netplumb-bridge', 'ADD', bridge, 'rl-1', '/run/netns/rl1');
if (add) {
  await step('bridge CHECK', 'netplumb-bridge', 'CHECK', { ...bridge, prevResult: add }, 'rl-1', '/run/netns/rl1');
  const ping = await run(['ip', 'netns', 'exec', 'rl1', 'ping', '-c', '1', '-W', '2', '10.95.0.1'], { check: false });
  report.ping = { exitCode: ping.exitCode, out: `${ping.stdout}${ping.stderr}`.trim() };
  report.nft = (await run(['nft', 'list', 'ruleset'], { check: false })).stdout.includes('8080');
  // netplumb-container joins rl-1 (by the ID netplumb-bridge recorded) from a fresh runtime namespace file.
  await run(['ip', 'netns', 'add', 'rl4']);
  const join4 = { cniVersion: '1.1.0', name: 'rootless-join', type: 'netplumb-container', container: 'rl-1' };
  await step('container ADD', 'netplumb-container', 'ADD', join4, 'rl-4', '/run/netns/rl4');
  const seen = await run(['ip', '-n', 'rl4', '-j', '-4', 'addr', 'show', 'dev', 'eth0'], { check: false });
  report.joinedSees = seen.exitCode === 0 ? (JSON.parse(seen.stdout) as any[])[0]?.addr_info?.[0]?.local : undefined;
  await step('container DEL', 'netplumb-container', 'DEL', join4, 'rl-4', '/run/netns/rl4');
  await step('bridge DEL', 'netplumb-bridge', 'DEL', bridge, 'rl-1', '/run/netns/rl1');
  report.vethsAfterDel = (JSON.parse((await run(['ip', '-j', 'link', 'show', 'master', 'rlbr0'])).stdout) as any[]).length;
}
await step('none ADD', 'netplumb-none', 'ADD', none, 'rl-2', '/run/netns/rl2');
await step('none DEL', 'netplumb-none', 'DEL', none, 'rl-2', '/run/netns/rl2');

// What the kernel does not allow here: entering a namespace owned by the parent user namespace.
const linksBefore = (await run(['ip', '-j', 'link', 'show'])).stdout;
const filesBefore = JSON.stringify(treeSnapshot(dataDir));
await step(
  'bridge ADD into a namespace of the parent user namespace',
  'netplumb-bridge',
  'ADD',
  { ...bridge, bridge: 'rlbr1', runtimeConfig: {} },
  'rl-3',
  join(dir, 'hostns'),
);
report.unchangedAfterRefusal = (await run(['ip', '-j', 'link', 'show'])).stdout === linksBefore && JSON.stringify(treeSnapshot(dataDir)) === filesBefore;
process.stdout.write(`${JSON.stringify(report)}\n`);
