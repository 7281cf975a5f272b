/**
 * netplumb under `ctr run --cni -d` (containerd 1.6), which never sends DEL for its containers: when they are
 * gone, their leases, nftables rules and attachment records wait for GC, which reclaims them even when the
 * runtime still lists them as valid (their namespace is gone), and a deleted bridge's isolation state too.
 * ctr reads its network configuration from /etc/cni/net.d and plugins from /usr/lib/cni (fixed paths): the
 * test bind-mounts its own directories over them inside the sandbox's mount namespace. Skipped when
 * containerd or /etc/cni/net.d is missing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sandboxed, createHost, run, type Host } from '../../netns-harness/index.js';
import { cniRuntime, ensurePluginBins, NETPLUMB_BIN, REFERENCE_BIN, reservations } from '../fixtures/cni-runtime.js';
import { nftAttachments, nftRuleset, vethNames } from '../fixtures/bridge-lab.js';
import { busyboxRootfs, ociArchive, skipUnlessInstalled, startContainerd, tcpFetch, type Containerd } from '../fixtures/runtimes.js';

skipUnlessInstalled(
  ['containerd', 'ctr', 'runc', '/bin/busybox', '/etc/cni/net.d', `${REFERENCE_BIN}/loopback`],
  'containerd runc busybox-static containernetworking-plugins podman (for /etc/cni/net.d)',
);

await sandboxed();
ensurePluginBins();

const tmp = mkdtempSync('/run/np-ctr-');
const NETWORK = 'ctrnet';
const BRIDGE = 'ctr-np0';
const ipamDir = join(tmp, 'ipam');
const store = join(ipamDir, NETWORK);
const RECORDS = '/run/netplumb/attachments';
let host: Host;
let containerd: Containerd;

const conflist = {
  cniVersion: '1.0.0',
  name: NETWORK,
  plugins: [
    {
      type: 'netplumb-bridge',
      bridge: BRIDGE,
      isGateway: true,
      ipMasq: true,
      ipam: { type: 'netplumb-host-local', dataDir: ipamDir, ranges: [[{ subnet: '10.89.0.0/24' }]] },
    },
  ],
};

test.before(async () => {
  host = await createHost('node');
  const conf = join(tmp, 'net.d');
  const bin = join(tmp, 'bin');
  mkdirSync(conf);
  mkdirSync(bin);
  writeFileSync(join(conf, '10-ctrnet.conflist'), JSON.stringify(conflist));
  for (const p of ['netplumb-bridge', 'netplumb-host-local']) symlinkSync(join(NETPLUMB_BIN, p), join(bin, p));
  for (const p of readdirSync(REFERENCE_BIN)) copyFileSync(join(REFERENCE_BIN, p), join(bin, p)); // the mount hides the originals
  await run(['mount', '--bind', conf, '/etc/cni/net.d']);
  await run(['mount', '--bind', bin, REFERENCE_BIN]);
  const image = await ociArchive(busyboxRootfs(join(tmp, 'rootfs')), join(tmp, 'image.tar'), 'ctr', ['nc', '-ll', '-p', '80', '-e', 'hostname']);
  containerd = await startContainerd(host, join(tmp, 'containerd'), { cniConfDir: conf, cniBinDir: bin, sandboxImage: 'netplumb.test/busybox:ctr' });
  await containerd.ctr(['images', 'import', '--base-name', 'netplumb.test/busybox', '--snapshotter', 'native', image], { namespace: 'default' });
});

test.after(async () => {
  await containerd?.stop();
  await host?.destroy();
  await run(['umount', REFERENCE_BIN], { check: false });
  await run(['umount', '/etc/cni/net.d'], { check: false });
  // a container's rootfs may still be mounted after a failure; /run is the sandbox's own tmpfs and goes with it
  try {
    rmSync(tmp, { recursive: true, force: true });
  } catch {
    /* left to the sandbox */
  }
});

const ctr = (...args: string[]) => containerd.ctr(args, { namespace: 'default' });

/** ctr's CNI_CONTAINERID for container `id`: the containerd namespace, a dash, the ID. */
const cniId = (id: string) => `default-${id}`;

/** Address → container ID, from the IPAM store (what netplumb-host-local handed out). */
const leases = () => new Map([...reservations(store)].map(([ip, v]) => [ip, v.split(/\r?\n/)[0]!]));

async function stopAndRemove(id: string): Promise<void> {
  await ctr('task', 'kill', '-s', 'KILL', id);
  for (let i = 0; i < 200; i++) {
    const t = await containerd.ctr(['task', 'ls'], { namespace: 'default' });
    if (!new RegExp(`^${id}\\s+\\d+\\s+RUNNING`, 'm').test(t.stdout)) break;
    await sleep(25);
  }
  await ctr('task', 'rm', '-f', id);
  await ctr('container', 'rm', id);
}

test("ctr run --cni -d: containers reach each other; without DEL, GC reclaims the dead ones (even when still listed) and a deleted bridge's state", async () => {
  for (const id of ['c1', 'c2']) await ctr('run', '--cni', '-d', '--snapshotter', 'native', 'netplumb.test/busybox:ctr', id);
  const ips = leases();
  assert.is(ips.size, 2, 'a lease per container');
  const ipOf = (id: string) => [...ips].find(([, c]) => c === cniId(id))![0];
  const records = readdirSync(RECORDS).sort();
  assert.equal(records, [cniId('c1'), cniId('c2')]);
  const { stdout: tasks } = await ctr('task', 'ls');
  const pid2 = Number(new RegExp('^c2\\s+(\\d+)', 'm').exec(tasks)![1]);
  // the containers share the machine's hostname (ctr sets none): an answer is what counts
  const answer = await tcpFetch(`/proc/${pid2}/ns/net`, ipOf('c1'), 80);
  assert.ok(answer.length > 0 && !answer.startsWith('(nc exit'), `c2 reaches c1: ${answer}`);

  // c1 goes; containerd sends no DEL: its lease, rules and record stay
  await stopAndRemove('c1');
  assert.is(leases().size, 2, 'no DEL: the lease stays');
  assert.is((await nftAttachments(host)).chains.length > 0, true);
  assert.equal(readdirSync(RECORDS).sort(), [cniId('c1'), cniId('c2')]);

  // a GC from a runtime that still lists c1: its namespace is gone, so it is reclaimed; c2 is kept
  const rt = cniRuntime({ host });
  const plugin = { ...conflist.plugins[0]!, cniVersion: '1.1.0', name: NETWORK };
  const gc = async (valid: string[]) => {
    const g = await rt.exec(
      'GC',
      { ...plugin, 'cni.dev/valid-attachments': valid.map((c) => ({ containerID: cniId(c), ifname: 'eth0' })) },
      {},
      { plugin: 'netplumb-bridge' },
    );
    assert.ok(g.ok, g.stdout + g.stderr);
  };
  const rulesBefore = (await nftAttachments(host)).chains.length;
  await gc(['c1', 'c2']);
  assert.equal([...leases().values()], [cniId('c2')], "c1's lease is released");
  assert.equal(readdirSync(RECORDS), [cniId('c2')], "c1's record is removed");
  const rulesAfter = (await nftAttachments(host)).chains.length;
  assert.ok(rulesAfter > 0 && rulesAfter < rulesBefore, `c1's chains are removed (${rulesBefore} → ${rulesAfter})`);
  assert.not.ok(JSON.stringify(await nftRuleset(host)).includes(`"${ipOf('c1')}"`), "no element names c1's address");
  assert.is(await tcpFetch(host.netnsPath, ipOf('c2'), 80), answer, 'c2 still answers from the node');
  assert.equal((await vethNames(host)).length, 1);

  // c2 goes too, and the bridge is deleted by hand: GC leaves nothing of either
  await stopAndRemove('c2');
  await host.exec(['ip', 'link', 'del', BRIDGE]);
  assert.ok(JSON.stringify(await nftRuleset(host)).includes(BRIDGE), "the deleted bridge is still in netplumb's isolation state");
  await gc([]);
  assert.is(leases().size, 0);
  assert.equal(existsSync(RECORDS) ? readdirSync(RECORDS) : [], []);
  assert.equal(await nftAttachments(host), { chains: [], rules: 0, elements: [] });
  assert.not.ok(JSON.stringify(await nftRuleset(host)).includes(BRIDGE), 'no chain, set or map element names the deleted bridge');
  assert.equal(await vethNames(host), []);
});

test.run();
