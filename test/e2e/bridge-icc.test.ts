/**
 * Packets prove `icc: false` (Docker's --icc=false): containers of one bridge cannot ping or open TCP to each
 * other in either family, yet reach the gateway, the outside (masquerade) and each other's published ports
 * through the host; `icc: true` (the default) is the control. `nft -j` and `ip -j -d link` are the oracles of
 * what was installed; CHECK reports a bridge or a chain that drifted.
 *
 *   outside (Host)  eth0 192.0.2.2/24 ── up0 192.0.2.1/24  host (Host: plugins run here)
 *   containers      eth0 ── veth<hash> ── bridge of the network under test
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  captureFrames,
  createHost,
  ethernetFrame,
  ping,
  sandboxed,
  sendRawFrames,
  startEchoServer,
  tcpSend,
  udpFrame,
  vlanTagged,
  waitFor,
  type Container,
  type Host,
  must,
} from '../../netns-harness/index.js';
import { setAllowRules } from '../../lib/firewall/index.js';
import { addContainer, bridgeConf, failure, makeOutsideOf, nftTable } from '../fixtures/bridge-lab.js';
import { cniRuntime } from '../fixtures/cni-runtime.js';

await sandboxed();

let host: Host;
let outside: Host;

test.before.each(async () => {
  host = await createHost('host');
  outside = await makeOutsideOf(host);
});
test.after.each(async () => {
  await outside.destroy();
  await host.destroy();
});

const SUBNETS = ['10.78.0.0/24', 'fd78::/64'];
const net = (icc: boolean) =>
  bridgeConf({ bridge: 'br-icc', isGateway: true, ipMasq: true, icc, routes: [{ dst: '0.0.0.0/0' }], subnet: SUBNETS, capabilities: { portMappings: true } });

const attach = (conf: any, name: string, extra: Record<string, unknown> = {}) => addContainer(host, conf, name, extra);
const addrOf = (r: any, family: 4 | 6) => r.ips.map((i: any) => i.address.split('/')[0]).find((a: string) => a.includes(':') === (family === 6));

/** Whether `from` can ping and open TCP to `to` (a server listens on port 80 of `to`), in both families. */
async function reach(from: Container, to: { ctr: Container; result: any }): Promise<{ ping4: boolean; ping6: boolean; tcp4: boolean; tcp6: boolean }> {
  const srv = await startEchoServer(to.ctr, 80);
  try {
    const [v4, v6] = [addrOf(to.result, 4), addrOf(to.result, 6)];
    return {
      ping4: (await ping(from, v4, { timeoutSec: 1 })).ok,
      ping6: (await ping(from, v6, { timeoutSec: 1 })).ok,
      tcp4: (await tcpSend(from, v4, 80, 'x', 1000)).reply === 'x',
      tcp6: (await tcpSend(from, v6, 80, 'x', 1000)).reply === 'x',
    };
  } finally {
    await srv.stop();
  }
}

const ALL = { ping4: true, ping6: true, tcp4: true, tcp6: true };
const NONE = { ping4: false, ping6: false, tcp4: false, tcp6: false };

test('icc: true (the default) is the control: containers of one bridge reach each other both ways, in both families', async () => {
  const conf = net(true);
  const a = await attach(conf, 'a');
  const b = await attach(conf, 'b');
  assert.equal(await reach(a.ctr, b), ALL, 'a → b');
  assert.equal(await reach(b.ctr, a), ALL, 'b → a');
  const rules = await nftTable('bridge', host.netnsPath);
  assert.not.ok(
    rules.some((o: any) => o.map?.name === 'icc_ports' && o.map.elem?.length),
    'no port is limited',
  );
});

test('icc: false: no ping, no TCP between containers in either direction or family; gateway, outside and published ports still work', async () => {
  const portMappings = [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }];
  const conf = net(false);
  const a = await attach(conf, 'a');
  const b = await attach(conf, 'b', { runtimeConfig: { portMappings } });
  assert.equal(await reach(a.ctr, b), NONE, 'a → b');
  assert.equal(await reach(b.ctr, a), NONE, 'b → a');
  for (const c of [a, b]) {
    assert.ok((await ping(c.ctr, '10.78.0.1')).ok, 'the IPv4 gateway');
    assert.ok((await ping(c.ctr, 'fd78::1')).ok, 'the IPv6 gateway');
  }
  const who = await startEchoServer(outside, 9000, '0.0.0.0', { whoami: true });
  try {
    const seen = await tcpSend(a.ctr, '192.0.2.2', 9000, 'hello');
    assert.is(seen.reply, '192.0.2.1', `the outside, masqueraded: ${seen.error}`);
  } finally {
    await who.stop();
  }
  const srv = await startEchoServer(b.ctr, 80);
  try {
    for (const [who, from] of [
      ['the host', host],
      ['the outside', outside],
      ['the other container, through the host', a.ctr],
    ] as const) {
      const r = await tcpSend(from, '192.0.2.1', 8080, 'published');
      assert.is(r.reply, 'published', `${who} reaches b's published port: ${r.error}`);
    }
  } finally {
    await srv.stop();
  }
  // ARP between the two containers is dropped at the bridge: a never learns b's MAC.
  const neigh = await a.ctr.ip<any[]>('neigh', 'show', 'dev', 'eth0');
  const bNeigh = neigh.find((n) => n.dst === addrOf(b.result, 4));
  assert.ok(bNeigh === undefined || !bNeigh.lladdr, `a has no MAC for b: ${JSON.stringify(bNeigh)}`);

  // The oracles: the bridge passes bridged IP through the inet hooks; the icc chain ends in a drop.
  const [br] = await host.ip<any[]>('-d', 'link', 'show', 'br-icc');
  assert.is(br.linkinfo.info_data.nf_call_iptables, 1);
  assert.is(br.linkinfo.info_data.nf_call_ip6tables, 1);
  const inet = await nftTable('inet', host.netnsPath);
  const iccRules = inet.filter((o: any) => o.rule && /-icc$/.test(o.rule.chain));
  assert.ok(
    iccRules.at(-1)?.rule.expr.some((e: any) => 'drop' in e),
    'the icc chain ends in a drop',
  );
  const ports = (await nftTable('bridge', host.netnsPath)).find((o: any) => o.map?.name === 'icc_ports');
  assert.is(ports.map.elem.length, 2, 'both host veths are limited ports');

  // DEL takes a container's port out.
  must(await cniRuntime({ host }).exec('DEL', conf, a.att));
  const after = (await nftTable('bridge', host.netnsPath)).find((o: any) => o.map?.name === 'icc_ports');
  assert.is(after.map.elem.length, 1);
});

/**
 * Frames a sends to b by MAC: a raw ethertype (0x88b5, for local experiments), an IPv4 datagram behind a
 * VLAN tag (priority only: b's kernel takes the tag off and delivers the datagram to its stack) and last a
 * plain UDP datagram to port 5000 (allowed by a rule when icc is off). b's capture sees frames in the order
 * they arrived, so once the last one is in, so is whatever of the others the bridge let through.
 */
async function otherFrames(conf: any): Promise<{ raw: boolean; tagged: boolean }> {
  const a = await attach(conf, 'a');
  const b = await attach(conf, 'b');
  const [av4, bv4] = [addrOf(a.result, 4), addrOf(b.result, 4)];
  if (!conf.icc) await setAllowRules('br-icc', [{ from: [av4], to: [bv4], ports: [{ protocol: 'udp', port: 5000 }] }], { netns: host.netnsPath });
  const [src, dst] = [a, b].map((x) => x.result.interfaces.find((i: any) => i.sandbox).mac as string);
  const id = Math.random().toString(36).slice(2, 8);
  const tag = { raw: `raw-${id}`, tagged: `tagged-${id}`, last: `last-${id}` };
  const udp = (payload: string) => udpFrame({ src: src!, dst: dst!, srcIp: av4, dstIp: bv4, sport: 4000, dport: 5000, payload });
  const capture = await captureFrames(b.ctr, 'eth0');
  try {
    await sendRawFrames(a.ctr, 'eth0', [
      ethernetFrame({ src: src!, dst: dst!, type: 0x88b5, payload: Buffer.from(tag.raw) }),
      vlanTagged(udp(tag.tagged), 0),
      udp(tag.last),
    ]);
    const got = (t: string) => capture.frames().some((f) => f.includes(t));
    await waitFor(() => got(tag.last));
    return { raw: got(tag.raw), tagged: got(tag.tagged) };
  } finally {
    await capture.stop();
  }
}

test('icc: true (the control): a raw ethertype and a VLAN-tagged datagram reach the other container', async () => {
  assert.equal(await otherFrames(net(true)), { raw: true, tagged: true });
});

test('icc: false: a raw ethertype and a VLAN-tagged datagram (which the inet hooks never see) do not reach the other container', async () => {
  assert.equal(await otherFrames(net(false)), { raw: false, tagged: false });
});

test('CHECK of an icc: false container reports a flushed icc chain and a bridge without nf_call_iptables', async () => {
  const rt = cniRuntime({ host });
  const conf = net(false);
  const a = await attach(conf, 'a');
  must(await rt.exec('CHECK', { ...conf, prevResult: a.result }, a.att));
  const chain = (await nftTable('inet', host.netnsPath)).find((o: any) => o.chain && /-icc$/.test(o.chain.name)).chain.name;
  await host.exec(['nft', 'flush', 'chain', 'inet', 'netplumb', chain]);
  await host.exec(['ip', 'link', 'set', 'br-icc', 'type', 'bridge', 'nf_call_iptables', '0']);
  const f = failure(await rt.exec('CHECK', { ...conf, prevResult: a.result }, a.att));
  assert.match(`${f.msg} ${f.details ?? ''}`, /icc rules/);
  assert.match(`${f.msg} ${f.details ?? ''}`, /nf_call_iptables/);
});

test.run();
