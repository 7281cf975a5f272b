/**
 * lib/firewall NAT against real packets: masquerade (the outside sees the host's address), published TCP and
 * UDP ports from the host (its own address and 127.0.0.1), from outside and from containers (hairpin), the
 * hostIP filter, IPv4 and IPv6.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, writeFileSync } from 'node:fs';
import { createHost, destroyAll, run, sandboxed, startEchoServer, startUdpServer, tcpSend, udpSend } from '../../netns-harness/index.js';
import { addContainerRules, removeContainerRules, type ContainerFirewall } from '../../lib/firewall/index.js';
import { attachToBr0, enableForwarding, hostNs, makeBridge, makeOutside, OUTSIDE, type Attached } from '../fixtures/bridge-lab.js';

await sandboxed();

enableForwarding();
await makeBridge('br0', ['10.88.0.1/16', 'fd88::1/64']);
const outside = await makeOutside();
// A second local address of the host, reachable from outside, to test the hostIP filter.
await run(['ip', 'addr', 'add', '198.51.100.1/32', 'dev', 'lo']);
await outside.exec(['ip', 'route', 'add', '198.51.100.1/32', 'via', OUTSIDE.hostV4]);
const lab = await createHost('lab');
const a = await attachToBr0(lab, 'a', 2);
const b = await attachToBr0(lab, 'b', 3);

function spec(c: Attached, id: string, extra: Partial<ContainerFirewall> = {}): ContainerFirewall {
  return { containerId: id, ifname: c.ifname, network: 'natnet', bridge: 'br0', ips: c.ips, hostVeth: c.hostVeth, mac: c.mac, ...extra };
}

test('without masquerade the outside cannot answer a container; with it, it sees the host address (v4 and v6)', async () => {
  const srv = await startEchoServer(outside, 7001, '::', { whoami: true });
  try {
    const before = await tcpSend(a.container, OUTSIDE.v4, 7001, 'x', 1500);
    assert.not.ok(before.reply, `no route back to 10.88.0.2 without NAT: ${JSON.stringify(before)}`);

    await addContainerRules(spec(a, 'ctr-a', { masquerade: true }));
    const v4 = await tcpSend(a.container, OUTSIDE.v4, 7001, 'x');
    assert.is(v4.reply, OUTSIDE.hostV4, v4.error);
    const v6 = await tcpSend(a.container, OUTSIDE.v6, 7001, 'x');
    assert.is(v6.reply, OUTSIDE.hostV6, v6.error);

    // Traffic inside the network is not NATed: b sees a's own address.
    const inner = await startEchoServer(b.container, 7002, '::', { whoami: true });
    try {
      assert.is((await tcpSend(a.container, '10.88.0.3', 7002, 'x')).reply, '10.88.0.2');
    } finally {
      await inner.stop();
    }
  } finally {
    await srv.stop();
    await removeContainerRules({ containerId: 'ctr-a', ifname: 'eth0', network: 'natnet' });
  }
  const after = await tcpSend(a.container, OUTSIDE.v4, 7001, 'x', 1500);
  assert.not.ok(after.ok, 'DEL took the masquerade away');
});

test('UDP is masqueraded too', async () => {
  await addContainerRules(spec(a, 'ctr-a', { masquerade: true }));
  const srv = await startUdpServer(outside, 7003, '::', { whoami: true });
  try {
    const r = await udpSend(a.container, OUTSIDE.v4, 7003, 'hello');
    assert.is(r.reply, OUTSIDE.hostV4, r.error);
    assert.equal(
      srv.received().map((x) => x.from),
      [OUTSIDE.hostV4],
    );
  } finally {
    await srv.stop();
    await removeContainerRules({ containerId: 'ctr-a', ifname: 'eth0', network: 'natnet' });
  }
});

test('published TCP and UDP ports: from outside, from the host (its address and 127.0.0.1), v4 and v6', async () => {
  await addContainerRules(
    spec(a, 'ctr-a', {
      masquerade: true,
      portMappings: [
        { hostPort: 8080, containerPort: 80 },
        { hostPort: 5353, containerPort: 53, protocol: 'udp' },
      ],
    }),
  );
  assert.is(readFileSync('/proc/sys/net/ipv4/conf/br0/route_localnet', 'utf8').trim(), '1', 'route_localnet set on the bridge for 127.0.0.1');
  const web = await startEchoServer(a.container, 80, '::', { whoami: true });
  const dns = await startUdpServer(a.container, 53, '::', { whoami: true });
  try {
    const fromOutside = await tcpSend(outside, OUTSIDE.hostV4, 8080, 'x');
    assert.is(fromOutside.reply, OUTSIDE.v4, `the container sees the real client: ${fromOutside.error}`);
    const fromOutside6 = await tcpSend(outside, OUTSIDE.hostV6, 8080, 'x');
    assert.is(fromOutside6.reply, OUTSIDE.v6, fromOutside6.error);
    const viaSecond = await tcpSend(outside, '198.51.100.1', 8080, 'x');
    assert.is(viaSecond.reply, OUTSIDE.v4, `any local address: ${viaSecond.error}`);

    const fromHost = await tcpSend(hostNs, OUTSIDE.hostV4, 8080, 'x');
    assert.is(fromHost.reply, OUTSIDE.hostV4, fromHost.error);
    const fromLocalhost = await tcpSend(hostNs, '127.0.0.1', 8080, 'x');
    assert.is(fromLocalhost.reply, '10.88.0.1', `127.0.0.1 is SNATed to the bridge address: ${fromLocalhost.error}`);
    const fromHost6 = await tcpSend(hostNs, OUTSIDE.hostV6, 8080, 'x');
    assert.is(fromHost6.reply, OUTSIDE.hostV6, fromHost6.error);

    const udpOut = await udpSend(outside, OUTSIDE.hostV4, 5353, 'q');
    assert.is(udpOut.reply, OUTSIDE.v4, udpOut.error);
    const udpOut6 = await udpSend(outside, OUTSIDE.hostV6, 5353, 'q');
    assert.is(udpOut6.reply, OUTSIDE.v6, udpOut6.error);
    const udpLocal = await udpSend(hostNs, '127.0.0.1', 5353, 'q');
    assert.is(udpLocal.reply, '10.88.0.1', udpLocal.error);

    const wrongProto = await udpSend(outside, OUTSIDE.hostV4, 8080, 'q', 1000);
    assert.not.ok(wrongProto.reply, 'tcp mapping does not forward udp');
    const unpublished = await tcpSend(outside, OUTSIDE.hostV4, 8081, 'x', 1000);
    assert.not.ok(unpublished.reply, 'an unpublished port reaches nothing');
  } finally {
    await web.stop();
    await dns.stop();
    await removeContainerRules({ containerId: 'ctr-a', ifname: 'eth0', network: 'natnet' });
  }
  const gone = await tcpSend(outside, OUTSIDE.hostV4, 8080, 'x', 1000);
  assert.not.ok(gone.reply, 'DEL unpublished the port');
});

for (const brNetfilter of ['1', '0']) {
  test(`hairpin: a container reaches another one, and itself, through the host port (bridge-nf-call-iptables=${brNetfilter})`, async () => {
    // With br_netfilter (bridge-nf-call-iptables=1, as on Kubernetes nodes) a DNATed frame for the same
    // container is bridged back out of the port it came from: the plugin must set hairpin mode on that port.
    writeFileSync('/proc/sys/net/bridge/bridge-nf-call-iptables', brNetfilter);
    writeFileSync('/proc/sys/net/bridge/bridge-nf-call-ip6tables', brNetfilter);
    await run(['ip', 'link', 'set', a.hostVeth, 'type', 'bridge_slave', 'hairpin', 'on']);
    // masquerade off: hairpin NAT must not depend on it.
    await addContainerRules(spec(a, 'ctr-a', { portMappings: [{ hostPort: 8080, containerPort: 80 }] }));
    await addContainerRules(spec(b, 'ctr-b'));
    const web = await startEchoServer(a.container, 80, '::', { whoami: true });
    try {
      for (const [who, c] of [
        ['another container', b],
        ['the same container', a],
      ] as const) {
        const r4 = await tcpSend(c.container, OUTSIDE.hostV4, 8080, 'x');
        assert.is(r4.reply, '10.88.0.1', `${who}, v4: replies come back through the host (${r4.error})`);
        const r6 = await tcpSend(c.container, OUTSIDE.hostV6, 8080, 'x');
        assert.is(r6.reply, 'fd88::1', `${who}, v6 (${r6.error})`);
        const viaGateway = await tcpSend(c.container, '10.88.0.1', 8080, 'x');
        assert.is(viaGateway.reply, '10.88.0.1', `${who} via the bridge address (${viaGateway.error})`);
      }
    } finally {
      await web.stop();
      await removeContainerRules({ containerId: 'ctr-a', ifname: 'eth0', network: 'natnet' });
      await removeContainerRules({ containerId: 'ctr-b', ifname: 'eth0', network: 'natnet' });
      await run(['ip', 'link', 'set', a.hostVeth, 'type', 'bridge_slave', 'hairpin', 'off']);
      writeFileSync('/proc/sys/net/bridge/bridge-nf-call-iptables', '1');
      writeFileSync('/proc/sys/net/bridge/bridge-nf-call-ip6tables', '1');
    }
  });
}

test('hostIP: a port published on one address is not published on the others', async () => {
  await addContainerRules(
    spec(a, 'ctr-a', {
      portMappings: [
        { hostPort: 9090, containerPort: 80, hostIP: OUTSIDE.hostV4 },
        { hostPort: 9191, containerPort: 80, hostIP: '127.0.0.1' },
        { hostPort: 9292, containerPort: 80, hostIP: OUTSIDE.hostV6 },
        { hostPort: 9393, containerPort: 80, hostIP: '0.0.0.0' },
      ],
    }),
  );
  const web = await startEchoServer(a.container, 80, '::', { whoami: true });
  try {
    assert.is((await tcpSend(outside, OUTSIDE.hostV4, 9090, 'x')).reply, OUTSIDE.v4, '9090 on 192.0.2.1');
    assert.not.ok((await tcpSend(outside, '198.51.100.1', 9090, 'x', 1000)).reply, '9090 not on 198.51.100.1');
    assert.not.ok((await tcpSend(hostNs, '127.0.0.1', 9090, 'x', 1000)).reply, '9090 not on 127.0.0.1');
    assert.is((await tcpSend(hostNs, '127.0.0.1', 9191, 'x')).reply, '10.88.0.1', '9191 on 127.0.0.1');
    assert.not.ok((await tcpSend(outside, OUTSIDE.hostV4, 9191, 'x', 1000)).reply, '9191 only on 127.0.0.1');
    assert.is((await tcpSend(outside, OUTSIDE.hostV6, 9292, 'x')).reply, OUTSIDE.v6, '9292 on the v6 address');
    assert.not.ok((await tcpSend(outside, OUTSIDE.hostV4, 9292, 'x', 1000)).reply, '9292 not on v4');
    assert.is((await tcpSend(outside, '198.51.100.1', 9393, 'x')).reply, OUTSIDE.v4, '0.0.0.0 = every v4 address');
    assert.not.ok((await tcpSend(outside, OUTSIDE.hostV6, 9393, 'x', 1000)).reply, '0.0.0.0 is v4 only');
  } finally {
    await web.stop();
    await removeContainerRules({ containerId: 'ctr-a', ifname: 'eth0', network: 'natnet' });
  }
});

test('a container cannot reach the host loopback although route_localnet is on (CVE-2020-8558)', async () => {
  await addContainerRules(spec(a, 'ctr-a', { portMappings: [{ hostPort: 8080, containerPort: 80 }] }));
  const local = await startEchoServer(hostNs, 7100, '0.0.0.0');
  try {
    // Make the container send 127.0.0.2 to its gateway instead of its own loopback.
    await a.container.exec(['sysctl', '-qw', 'net.ipv4.conf.all.route_localnet=1', 'net.ipv4.conf.eth0.route_localnet=1']);
    await a.container.exec(['ip', 'route', 'del', 'local', '127.0.0.0/8', 'dev', 'lo', 'table', 'local']);
    await a.container.exec(['ip', 'route', 'add', '127.0.0.2/32', 'via', '10.88.0.1', 'dev', 'eth0']);
    const r = await tcpSend(a.container, '127.0.0.2', 7100, 'x', 1500);
    assert.not.ok(r.ok, 'host loopback service unreachable from a container');

    // The oracle can fail: without netplumb's guard chain the same packets do reach the host's loopback.
    await run(['nft', 'flush', 'chain', 'inet', 'netplumb', 'guard']);
    const unguarded = await tcpSend(a.container, '127.0.0.2', 7100, 'x', 1500);
    assert.ok(unguarded.ok, `without the guard: ${unguarded.error}`);
    // The next ADD rebuilds the skeleton, guard included.
    await addContainerRules(spec(a, 'ctr-a', { portMappings: [{ hostPort: 8080, containerPort: 80 }] }));
    assert.not.ok((await tcpSend(a.container, '127.0.0.2', 7100, 'x', 1500)).ok, 'guard restored');
  } finally {
    await local.stop();
    await a.container.exec(['ip', 'route', 'del', '127.0.0.2/32'], { check: false });
    await a.container.exec(['ip', 'route', 'add', 'local', '127.0.0.0/8', 'dev', 'lo', 'table', 'local', 'src', '127.0.0.1'], { check: false });
    await removeContainerRules({ containerId: 'ctr-a', ifname: 'eth0', network: 'natnet' });
  }
});

test.after(() => destroyAll());

test.run();
