/**
 * netplumb under containerd's CRI plugin, the path a Kubernetes node takes: Debian's containerd runs in a
 * harness host (its own network namespace, the sandbox's mount namespace, root/state/sockets in a temporary
 * directory), driven by a CRI client over gRPC (runtime.v1). Pods publish a hostPort; the port answers from
 * the host and from a second pod; StopPodSandbox/RemovePodSandbox leave no veth, lease, nftables element or
 * record. The recording plugin sits in front of netplumb-bridge and keeps the exact payloads containerd
 * sends (Go field names in runtimeConfig.portMappings), which are then fed to every netplumb plugin that
 * reads runtimeConfig or args. Skipped when containerd is not installed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sandboxed, createHost, type Host } from '../../netns-harness/index.js';
import { ensurePluginBins, reservations } from '../fixtures/cni-runtime.js';
import { nftRuleset, vethNames } from '../fixtures/bridge-lab.js';
import {
  busyboxRootfs,
  cniBinDir,
  criClient,
  ociArchive,
  recordedCalls,
  replayRecordedAdds,
  skipUnlessInstalled,
  startContainerd,
  tcpFetch,
  type Containerd,
  type CriClient,
} from '../fixtures/runtimes.js';

skipUnlessInstalled(['containerd', 'ctr', 'runc', '/bin/busybox', '/usr/lib/cni/loopback'], 'containerd runc busybox-static containernetworking-plugins');

await sandboxed();
ensurePluginBins();

// under the sandbox's private /run (a tmpfs that goes with the sandbox, even when the test is killed)
const tmp = mkdtempSync('/run/np-cri-');
const IMAGE = 'netplumb.test/busybox:cri';
const SUBNET = '10.88.0.0/24';
const GATEWAY = '10.88.0.1';
const BRIDGE = 'cni-np0';
const ipamDir = join(tmp, 'ipam');
const recordDir = join(tmp, 'recorded');
let host: Host;
let containerd: Containerd;
let cri: CriClient;

const conflist = {
  cniVersion: '1.0.0',
  name: 'crinet',
  plugins: [
    {
      type: 'netplumb-recorder',
      recordFor: 'netplumb-bridge',
      bridge: BRIDGE,
      isGateway: true,
      ipMasq: true,
      ipam: { type: 'netplumb-host-local', dataDir: ipamDir, ranges: [[{ subnet: SUBNET }]] },
      capabilities: { portMappings: true },
    },
  ],
};

test.before(async () => {
  host = await createHost('node');
  const rootfs = busyboxRootfs(join(tmp, 'rootfs'));
  // every pod's sandbox container answers a TCP connection on port 80 with its hostname
  const image = await ociArchive(rootfs, join(tmp, 'image.tar'), 'cri', ['nc', '-ll', '-p', '80', '-e', 'hostname']);
  const confDir = join(tmp, 'net.d');
  mkdirSync(confDir);
  mkdirSync(recordDir);
  writeFileSync(join(confDir, '10-crinet.conflist'), JSON.stringify(conflist));
  containerd = await startContainerd(host, join(tmp, 'containerd'), {
    cniConfDir: confDir,
    cniBinDir: cniBinDir(join(tmp, 'bin')),
    sandboxImage: IMAGE,
    env: { NETPLUMB_RECORD_DIR: recordDir },
  });
  await containerd.ctr(['images', 'import', '--base-name', 'netplumb.test/busybox', '--snapshotter', 'native', image]);
  cri = await criClient(containerd.address);
});

test.after(async () => {
  cri?.close();
  await containerd?.stop();
  await host?.destroy();
  // a container's rootfs may still be mounted after a failure; /run is the sandbox's own tmpfs and goes with it
  try {
    rmSync(tmp, { recursive: true, force: true });
  } catch {
    /* left to the sandbox */
  }
});

const pod = (name: string, hostPort?: number) => ({
  config: {
    metadata: { name, uid: `uid-${name}`, namespace: 'default', attempt: 0 },
    hostname: name,
    port_mappings: hostPort === undefined ? [] : [{ protocol: 'TCP', container_port: 80, host_port: hostPort, host_ip: '' }],
    labels: {},
    annotations: {},
    linux: { cgroup_parent: '' },
  },
});

/** The pod's network namespace, from the runtime spec in its verbose status. */
async function podNetns(id: string): Promise<string> {
  const s = await cri.podSandboxStatus({ pod_sandbox_id: id, verbose: true });
  const info = JSON.parse(s.info.info ?? '{}');
  const ns = (info.runtimeSpec?.linux?.namespaces ?? []).find((n: { type: string }) => n.type === 'network');
  assert.ok(ns?.path, `no network namespace in the status of ${id}`);
  return ns.path as string;
}

const HOST_PORT = 18080;

test('pods with a hostPort under containerd CRI: reachable from the host and from a second pod; removal leaves nothing', async () => {
  const v = await cri.version({ version: 'v1' });
  assert.is(v.runtime_name, 'containerd');
  const a = (await cri.runPodSandbox(pod('pod-a', HOST_PORT))).pod_sandbox_id;
  const b = (await cri.runPodSandbox(pod('pod-b'))).pod_sandbox_id;
  const ipA = (await cri.podSandboxStatus({ pod_sandbox_id: a })).status.network?.ip ?? '';
  const ipB = (await cri.podSandboxStatus({ pod_sandbox_id: b })).status.network?.ip ?? '';
  assert.match(ipA, /^10\.88\.0\.\d+$/);
  assert.match(ipB, /^10\.88\.0\.\d+$/);
  assert.is.not(ipA, ipB);
  assert.is((await vethNames(host)).length, 2, 'a host veth per pod');

  // the published port, from the node itself (locally generated traffic) and from the other pod
  const node = host.netnsPath;
  const netnsB = await podNetns(b);
  assert.is(await tcpFetch(node, GATEWAY, HOST_PORT), 'pod-a', 'the node reaches pod-a through its hostPort');
  assert.is(await tcpFetch(netnsB, GATEWAY, HOST_PORT), 'pod-a', "pod-b reaches pod-a through the node's hostPort");
  assert.is(await tcpFetch(netnsB, ipA, 80), 'pod-a', 'pod-b reaches pod-a directly');
  const rules = JSON.stringify(await nftRuleset(host));
  assert.ok(rules.includes(String(HOST_PORT)), "the published port is in netplumb's nftables state");

  for (const id of [a, b]) {
    await cri.stopPodSandbox({ pod_sandbox_id: id });
    await cri.stopPodSandbox({ pod_sandbox_id: id }); // idempotent, as kubelet expects
    await cri.removePodSandbox({ pod_sandbox_id: id });
  }
  assert.equal((await cri.listPodSandbox({})).items, []);
  assert.equal(await vethNames(host), [], 'no veth left');
  assert.is(reservations(join(ipamDir, 'crinet')).size, 0, 'no lease left');
  const after = JSON.stringify(await nftRuleset(host));
  for (const gone of [ipA, ipB, String(HOST_PORT)])
    assert.not.ok(
      after.includes(`"${gone}"`) || after.includes(`:${gone}`) || after.includes(` ${gone}`) || after.includes(`${gone},`),
      `${gone} is still in nftables:\n${after}`,
    );
  const records = '/run/netplumb/attachments';
  assert.equal(existsSync(records) ? readdirSync(records) : [], [], 'no attachment record left');
});

test('the payloads containerd sent were recorded: Go field names in runtimeConfig.portMappings', () => {
  const calls = recordedCalls(recordDir);
  const adds = calls.filter((c) => c.env.CNI_COMMAND === 'ADD');
  assert.is(adds.length, 2);
  const withPorts = adds.find((c) => c.stdin.includes('portMappings'));
  assert.ok(withPorts, 'one ADD carries runtimeConfig.portMappings');
  const rc = JSON.parse(withPorts!.stdin).runtimeConfig;
  if (process.env.NETPLUMB_SHOW_PAYLOADS) process.stdout.write(`${withPorts!.stdin}\n${JSON.stringify(withPorts!.env)}\n`);
  assert.equal(Object.keys(rc.portMappings[0]).sort(), ['ContainerPort', 'HostIP', 'HostPort', 'Protocol']);
  assert.ok(
    calls.some((c) => c.env.CNI_COMMAND === 'DEL'),
    'and DEL for each pod',
  );
});

test('every captured payload, fed to each netplumb plugin that reads runtimeConfig or args: accepted and honoured', async () => {
  const fed = await replayRecordedAdds(host, recordedCalls(recordDir), ['netplumb-host-local', 'netplumb-bridge'], async (type, call, result) => {
    assert.match(JSON.stringify(result.ips), /10\.88\.0\./);
    if (type === 'netplumb-bridge' && call.stdin.includes('HostPort')) {
      assert.ok(JSON.stringify(await nftRuleset(host)).includes(String(HOST_PORT)), 'the HostPort mapping is installed');
    }
  });
  assert.is(fed, 4);
  assert.equal(await vethNames(host), []);
  assert.is(reservations(join(ipamDir, 'crinet')).size, 0);
});

test.run();
