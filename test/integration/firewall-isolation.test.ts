/**
 * lib/firewall isolation between netplumb bridges (Docker's DOCKER-ISOLATION): containers on two bridges
 * cannot reach each other unless both allow it; a published port stays reachable through the host address;
 * bridges netplumb does not know are not affected.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHost, destroyAll, ping, sandboxed, startEchoServer, tcpSend } from '../../netns-harness/index.js';
import { addContainerRules, ensureNetworkFirewall, removeContainerRules, removeNetworkFirewall, type ContainerFirewall } from '../../lib/firewall/index.js';
import { attach, enableForwarding, makeBridge, makeOutside, nftSummary, OUTSIDE, type Attached } from '../fixtures/bridge-lab.js';

await sandboxed();

enableForwarding();
await makeBridge('br0', ['10.88.0.1/16']);
await makeBridge('br1', ['10.89.0.1/16']);
await makeBridge('other', ['10.90.0.1/16']); // a bridge netplumb does not manage
await makeOutside();
const lab = await createHost('lab');
const a = await attach(await lab.createContainer('a'), 'br0', { ips: ['10.88.0.2/16'], gateways: ['10.88.0.1'], mac: '02:00:00:88:00:02' });
const b = await attach(await lab.createContainer('b'), 'br1', { ips: ['10.89.0.2/16'], gateways: ['10.89.0.1'], mac: '02:00:00:89:00:02' });
await attach(await lab.createContainer('a2'), 'br0', { ips: ['10.88.0.3/16'], gateways: ['10.88.0.1'], mac: '02:00:00:88:00:03' });
const o = await attach(await lab.createContainer('o'), 'other', { ips: ['10.90.0.2/16'], gateways: ['10.90.0.1'], mac: '02:00:00:90:00:02' });

function spec(c: Attached, id: string, network: string, bridge: string, extra: Partial<ContainerFirewall> = {}): ContainerFirewall {
  return { containerId: id, ifname: c.ifname, network, bridge, ips: c.ips, ...extra };
}
const reach = async (from: Attached, to: string) => (await ping(from.container, to, { timeoutSec: 1 })).ok;

test('before any rules, the host routes between all bridges (the oracle can see a connection)', async () => {
  assert.ok(await reach(a, '10.89.0.2'));
  assert.ok(await reach(b, '10.88.0.2'));
  assert.ok(await reach(a, '10.90.0.2'));
});

test('isolated by default: no traffic between two netplumb bridges, in either direction', async () => {
  await addContainerRules(spec(a, 'a', 'net0', 'br0'));
  await addContainerRules(spec(b, 'b', 'net1', 'br1'));
  assert.not.ok(await reach(a, '10.89.0.2'), 'br0 → br1 dropped');
  assert.not.ok(await reach(b, '10.88.0.2'), 'br1 → br0 dropped');
  const srv = await startEchoServer(b.container, 7000);
  try {
    assert.not.ok((await tcpSend(a.container, '10.89.0.2', 7000, 'x', 1000)).ok, 'TCP too');
  } finally {
    await srv.stop();
  }
  // Within a bridge, to the host, to an unmanaged bridge and to the outside: untouched.
  assert.ok(await reach(a, '10.88.0.3'), 'same bridge');
  assert.ok(await reach(a, '10.88.0.1'), 'the gateway');
  assert.ok(await reach(a, '10.89.0.1'), "the host's address on the other bridge is the host, not the other network");
  assert.ok(await reach(a, '10.90.0.2'), 'a bridge netplumb does not manage');
  assert.ok(await reach(o, '10.88.0.2'), 'and back');
  const s = await nftSummary();
  assert.ok(s.elements.some((e) => e.startsWith('isolation_from "br0"')) && s.elements.some((e) => e.startsWith('isolation_from "br1"')));
});

test('a published port is reachable from the other bridge through the host address', async () => {
  await addContainerRules(spec(a, 'a', 'net0', 'br0', { portMappings: [{ hostPort: 8080, containerPort: 80 }] }));
  const srv = await startEchoServer(a.container, 80, '::', { whoami: true });
  try {
    const r = await tcpSend(b.container, OUTSIDE.hostV4, 8080, 'x');
    assert.is(r.reply, '10.89.0.2', r.error);
    assert.not.ok((await tcpSend(b.container, '10.88.0.2', 80, 'x', 1000)).reply, 'but not the container directly');
  } finally {
    await srv.stop();
  }
});

test('allowed when both bridges allow each other; consent of one side is not enough', async () => {
  await ensureNetworkFirewall({ network: 'net0', bridge: 'br0', allowBridges: ['br1'] });
  assert.not.ok(await reach(a, '10.89.0.2'), 'br1 still isolates itself from br0');
  await ensureNetworkFirewall({ network: 'net1', bridge: 'br1', allowBridges: ['br0'] });
  assert.ok(await reach(a, '10.89.0.2'), 'both allow');
  assert.ok(await reach(b, '10.88.0.2'), 'both allow, other direction');

  // Withdrawn by the next configuration (the isolation chains are rewritten, not appended to).
  await addContainerRules(spec(b, 'b', 'net1', 'br1', { allowBridges: [] }));
  assert.not.ok(await reach(a, '10.89.0.2'), 'allowance withdrawn');
});

test('isolate: false on both sides lets them talk; true on one side is enough to isolate', async () => {
  await ensureNetworkFirewall({ network: 'net0', bridge: 'br0', isolate: false });
  assert.not.ok(await reach(a, '10.89.0.2'), 'br1 is still isolated');
  await ensureNetworkFirewall({ network: 'net1', bridge: 'br1', isolate: false });
  assert.ok(await reach(a, '10.89.0.2'));
  assert.ok(await reach(b, '10.88.0.2'));
  await ensureNetworkFirewall({ network: 'net0', bridge: 'br0', isolate: true });
  assert.not.ok(await reach(b, '10.88.0.2'), 'isolated again');
});

test('removeNetworkFirewall forgets a bridge; DEL of the containers leaves the bridge setup alone', async () => {
  await removeContainerRules({ containerId: 'a', ifname: 'eth0', network: 'net0' });
  await removeContainerRules({ containerId: 'b', ifname: 'eth0', network: 'net1' });
  assert.not.ok(await reach(b, '10.88.0.2'), 'isolation is per bridge, not per container');
  await removeNetworkFirewall('br0');
  await removeNetworkFirewall('br0'); // idempotent
  const s = await nftSummary();
  assert.not.ok(
    s.elements.some((e) => e.includes('"br0"')),
    s.elements.join('\n'),
  );
  assert.ok(await reach(b, '10.88.0.2'), 'br1 was not isolated any more, and br0 is not a netplumb bridge now');
});

test.after(() => destroyAll());

test.run();
