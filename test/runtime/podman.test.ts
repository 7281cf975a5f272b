/**
 * netplumb under podman 4.3 with its CNI backend: podman runs in a harness host's network namespace with its
 * own containers.conf and storage.conf (root, runroot, CNI directories under the sandbox's private /run), the
 * runc wrapper as its runtime (no CAP_SYS_RESOURCE, hybrid cgroups), an image imported from busybox-static.
 * Two containers on a netplumb network, one publishing a port: reachable from the node and from the other;
 * `podman rm -f` (DEL) leaves no veth, lease, nftables element or record. The recording plugin keeps podman's
 * payloads, fed again to every netplumb plugin that reads runtimeConfig or args. Skipped without podman.
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
  podmanIn,
  recordedCalls,
  replayRecordedAdds,
  rootfsTar,
  skipUnlessInstalled,
  tcpFetch,
  type Podman,
} from '../fixtures/runtimes.js';

skipUnlessInstalled(['podman', 'conmon', '/usr/sbin/runc', '/bin/busybox', '/usr/lib/cni/loopback'], 'podman runc busybox-static containernetworking-plugins');

await sandboxed();
ensurePluginBins();

const tmp = mkdtempSync('/run/np-podman-');
const NETWORK = 'podnet';
const SUBNET_RE = /^10\.90\.0\.\d+$/;
const GATEWAY = '10.90.0.1';
const HOST_PORT = 18081;
const IMAGE = 'netplumb.test/busybox:podman';
const ipamDir = join(tmp, 'ipam');
const recordDir = join(tmp, 'recorded');
let host: Host;
let podman: Podman;

const conflist = {
  cniVersion: '1.0.0',
  name: NETWORK,
  plugins: [
    {
      type: 'netplumb-recorder',
      recordFor: 'netplumb-bridge',
      bridge: 'pod-np0',
      isGateway: true,
      ipMasq: true,
      ipam: { type: 'netplumb-host-local', dataDir: ipamDir, ranges: [[{ subnet: '10.90.0.0/24', gateway: GATEWAY }]] },
      capabilities: { portMappings: true, ips: true, mac: true },
    },
  ],
};

test.before(async () => {
  host = await createHost('node');
  const conf = join(tmp, 'net.d');
  mkdirSync(conf);
  mkdirSync(recordDir);
  writeFileSync(join(conf, '10-podnet.conflist'), JSON.stringify(conflist));
  podman = podmanIn(host, tmp, { cniBinDir: cniBinDir(join(tmp, 'bin')), cniConfDir: conf, env: { NETPLUMB_RECORD_DIR: recordDir } });
  const rootfs = busyboxRootfs(join(tmp, 'rootfs'));
  await podman(['import', '--change', 'CMD ["sh"]', await rootfsTar(rootfs, join(tmp, 'rootfs.tar')), IMAGE]);
});

test.after(async () => {
  if (host) {
    await podman(['rm', '-f', '-a'], false);
    await host.destroy();
  }
  try {
    rmSync(tmp, { recursive: true, force: true });
  } catch {
    /* a mount left by a failure: /run is the sandbox's own tmpfs */
  }
});

const inspect = async (name: string, format: string) => (await podman(['inspect', '-f', format, name])).stdout.trim();

test('podman (CNI backend): a published port reachable from the node and from another container; rm -f leaves nothing', async () => {
  const server = ['nc', '-ll', '-p', '80', '-e', 'hostname'];
  await podman(['run', '-d', '--name', 'p1', '--hostname', 'p1', '--network', NETWORK, '-p', `${HOST_PORT}:80`, IMAGE, ...server]);
  await podman(['run', '-d', '--name', 'p2', '--hostname', 'p2', '--network', NETWORK, IMAGE, ...server]);
  const ip1 = await inspect('p1', `{{(index .NetworkSettings.Networks "${NETWORK}").IPAddress}}`);
  const ip2 = await inspect('p2', `{{(index .NetworkSettings.Networks "${NETWORK}").IPAddress}}`);
  assert.match(ip1, SUBNET_RE);
  assert.match(ip2, SUBNET_RE);
  const netns2 = await inspect('p2', '{{.NetworkSettings.SandboxKey}}');
  assert.is(await tcpFetch(host.netnsPath, GATEWAY, HOST_PORT), 'p1', 'the node reaches p1 through its published port');
  assert.is(await tcpFetch(netns2, GATEWAY, HOST_PORT), 'p1', 'p2 reaches p1 through the published port');
  assert.is(await tcpFetch(netns2, ip1, 80), 'p1', 'p2 reaches p1 directly');

  await podman(['rm', '-f', 'p1', 'p2']);
  assert.equal(await vethNames(host), [], 'no veth left');
  assert.is(reservations(join(ipamDir, NETWORK)).size, 0, 'no lease left');
  const rules = JSON.stringify(await nftRuleset(host));
  for (const gone of [ip1, ip2]) assert.not.ok(rules.includes(`"${gone}"`), `${gone} is still in nftables`);
  assert.not.ok(rules.includes(`${HOST_PORT}`), 'the published port is gone from nftables');
  const records = '/run/netplumb/attachments';
  assert.equal(existsSync(records) ? readdirSync(records) : [], [], 'no attachment record left');
});

test("podman's recorded payloads, fed to each netplumb plugin that reads runtimeConfig or args", async () => {
  const calls = recordedCalls(recordDir);
  const withPorts = calls.find((c) => c.env.CNI_COMMAND === 'ADD' && c.stdin.includes('portMappings'));
  assert.ok(withPorts, 'podman sent runtimeConfig.portMappings');
  const fed = await replayRecordedAdds(host, calls, ['netplumb-host-local', 'netplumb-bridge'], async (type, call, result) => {
    assert.match(JSON.stringify(result.ips), /10\.90\.0\./);
    if (type === 'netplumb-bridge' && call === withPorts) assert.ok(JSON.stringify(await nftRuleset(host)).includes(String(HOST_PORT)));
  });
  assert.is(fed, 4);
  assert.equal(await vethNames(host), []);
});

test.run();
