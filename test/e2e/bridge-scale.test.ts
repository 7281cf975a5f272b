/**
 * netplumb-bridge under load and failure:
 *  - 50 ADDs at once on a bridge that does not exist yet: all succeed with distinct addresses; 50 DELs at once
 *    leave no veth, no container address, no per-container nftables state, no IPAM file;
 *  - DEL after the container's namespace was deleted (a named one, removed with `ip netns del`) releases all;
 *  - a failed ADD leaves nothing behind: an exhausted range, and a fault injected after each step
 *    (NETPLUMB_FAULT), compared as snapshots of links, addresses, routes, the IPAM store, the nft ruleset and
 *    the attachment records.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { run, sandboxed, type Host, must } from '../../netns-harness/index.js';
import { cniRuntime, pool, treeSnapshot } from '../fixtures/cni-runtime.js';
import { bridgeConf, failure, links, nftAttachments, nftRuleset, reservations, vethNames, hostPerTest } from '../fixtures/bridge-lab.js';
import { hostPicture } from '../fixtures/storm.js';

await sandboxed();

const host = hostPerTest(test);

const N = 50;
/** netplumb's attachment records (lib/modes/state.ts) */
const RECORDS = '/run/netplumb/attachments';

test(`${N} ADDs at once on a new bridge, then ${N} DELs at once: distinct addresses, then nothing left`, async () => {
  const rt = cniRuntime({ host });
  const conf = bridgeConf({ isGateway: true, ipMasq: true, macspoofchk: true, subnet: '10.40.0.0/24', routes: [{ dst: '0.0.0.0/0' }] });
  const ctrs = await pool(
    Array.from({ length: N }, (_, i) => i),
    8,
    (i) => host.createContainer(`c${i}`),
  );
  const atts = ctrs.map((c, i) => ({ containerId: `par-${i}`, netns: c.netnsPath, ifname: 'eth0' }));
  const results = await Promise.all(
    atts.map((att, i) => rt.exec('ADD', { ...conf, runtimeConfig: { portMappings: [{ hostPort: 20000 + i, containerPort: 80 }] } }, att)),
  );
  for (const r of results) must(r);
  const addrs = results.map((r) => r.json.ips[0].address);
  assert.is(new Set(addrs).size, N, 'distinct addresses');
  assert.is(new Set(results.map((r) => r.json.interfaces[1].name)).size, N, 'distinct host veths');
  const l = await links(host);
  assert.is(l.filter((x) => x.master === 'netplumb0').length, N, 'every veth is a port of the one bridge');
  assert.is(l.filter((x) => x.linkinfo?.info_kind === 'bridge').length, 1);
  for (const [i, c] of ctrs.entries()) {
    const a = (await c.ip<any[]>('-4', 'addr', 'show', 'dev', 'eth0'))[0].addr_info.map((x: any) => `${x.local}/${x.prefixlen}`);
    assert.equal(a, [addrs[i]]);
  }
  assert.is(reservations(join(conf.ipam.dataDir, 'npnet')).size, N);
  assert.is(Object.keys(treeSnapshot(RECORDS)).filter((k) => k.startsWith('par-') && k.endsWith('/bridge:npnet:eth0')).length, N, 'one attachment record each');
  const fw = await nftAttachments(host);
  assert.is(fw.elements.filter((e) => e.startsWith('masq4')).length, N);
  assert.is(fw.elements.filter((e) => e.startsWith('ports')).length, N, 'one published port per container (IPv4 only)');
  const brAddrs = (await host.ip<any[]>('-4', 'addr', 'show', 'dev', 'netplumb0'))[0].addr_info.map((x: any) => x.local);
  assert.equal(brAddrs, ['10.40.0.1'], 'the gateway was added once');

  const dels = await Promise.all(
    atts.map((att, i) => rt.exec('DEL', { ...conf, runtimeConfig: { portMappings: [{ hostPort: 20000 + i, containerPort: 80 }] } }, att)),
  );
  for (const d of dels) must(d);
  assert.equal(await vethNames(host), [], 'no veth');
  for (const c of ctrs)
    assert.equal(
      (await c.ip<any[]>('link', 'show')).map((x) => x.ifname),
      ['lo'],
      'no container interface',
    );
  const hostAddrs = (await host.ip<any[]>('-4', 'addr', 'show')).flatMap((x) => x.addr_info.map((a: any) => `${x.ifname} ${a.local}`));
  assert.equal(hostAddrs.sort(), ['lo 127.0.0.1', 'netplumb0 10.40.0.1'], 'no address but the gateway');
  assert.equal(await nftAttachments(host), { chains: [], rules: 0, elements: [] }, 'no per-container nft state');
  assert.equal([...reservations(join(conf.ipam.dataDir, 'npnet'))], [], 'no IPAM file');
  assert.equal(
    Object.keys(treeSnapshot(RECORDS)).filter((k) => k.startsWith('par-')),
    [],
    'no attachment record',
  );
  const nat = await nftRuleset(host);
  assert.not.ok(
    nat.some((o) => o.rule && o.rule.table === 'netplumb' && JSON.stringify(o.rule).includes('par-')),
    'no rule names a container',
  );
});

test("DEL after the container's named namespace was deleted succeeds and releases everything", async () => {
  const rt = cniRuntime({ host });
  const conf = bridgeConf({ isGateway: true, ipMasq: true, subnet: '10.41.0.0/24' });
  await host.exec(['ip', 'netns', 'add', 'doomed']);
  const att = { containerId: 'doomed', netns: '/var/run/netns/doomed', ifname: 'eth0' };
  must(await rt.exec('ADD', conf, att));
  assert.is((await vethNames(host)).length, 1);
  await host.exec(['ip', 'netns', 'del', 'doomed']);
  must(await rt.exec('DEL', conf, att));
  assert.equal(await vethNames(host), []);
  assert.equal([...reservations(join(conf.ipam.dataDir, 'npnet'))], []);
  assert.equal(await nftAttachments(host), { chains: [], rules: 0, elements: [] });
  must(await rt.exec('DEL', conf, att));
});

/**
 * Everything a failed ADD could have left in `h` (fixtures/storm.ts hostPicture): links, addresses, routes, the
 * nft ruleset, the files of the network's IPAM store (not its bookkeeping) and the attachment records.
 */
const snapshot = (h: Host, conf: { name: string; ipam: { dataDir: string } }) => hostPicture(h, [join(conf.ipam.dataDir, conf.name)]);

test('a failed ADD leaves nothing behind: exhausted range, and a fault after every step', async () => {
  const conf = bridgeConf({
    isGateway: true,
    ipMasq: true,
    macspoofchk: true,
    subnet: '10.42.0.0/29',
    routes: [{ dst: '0.0.0.0/0' }],
    capabilities: { portMappings: true },
  });
  const withPorts = { ...conf, runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80 }] } };
  const ctr = await host.createContainer('victim');
  const att = { containerId: 'victim', netns: ctr.netnsPath, ifname: 'eth0' };
  const ctrLinks = async () => (await ctr.ip<any[]>('link', 'show')).map((x) => x.ifname);

  // On a fresh host (no bridge yet): failures before the firewall leave the host exactly as it was.
  for (const step of ['ipam', 'bridge', 'veth', 'container']) {
    const before = await snapshot(host, conf);
    const e = failure(await cniRuntime({ host, env: { NETPLUMB_FAULT: step } }).exec('ADD', withPorts, att));
    assert.match(e.msg, /fault injected/, step);
    assert.equal(await snapshot(host, conf), before, `fresh host, fault after ${step}`);
    assert.equal(await ctrLinks(), ['lo'], `fresh host, fault after ${step}: nothing in the container`);
  }

  // With the bridge and another container in place (the usual case): every step, the firewall included.
  const other = await host.createContainer('other');
  must(await cniRuntime({ host }).exec('ADD', conf, { containerId: 'other', netns: other.netnsPath, ifname: 'eth0' }));
  for (const step of ['ipam', 'bridge', 'veth', 'container', 'firewall', 'garp']) {
    const before = await snapshot(host, conf);
    const e = failure(await cniRuntime({ host, env: { NETPLUMB_FAULT: step } }).exec('ADD', withPorts, att));
    assert.match(e.msg, new RegExp(`fault injected after step "${step}"`));
    assert.equal(await snapshot(host, conf), before, `fault after ${step}`);
    assert.equal(await ctrLinks(), ['lo'], `fault after ${step}: nothing in the container`);
  }

  // Exhausted range: a /29 has 5 addresses for containers; "other" holds one.
  const fill = await pool([1, 2, 3, 4], 4, async (i) => {
    const c = await host.createContainer(`fill${i}`);
    must(await cniRuntime({ host }).exec('ADD', conf, { containerId: `fill${i}`, netns: c.netnsPath, ifname: 'eth0' }));
  });
  assert.is(fill.length, 4);
  const before = await snapshot(host, conf);
  const e = failure(await cniRuntime({ host }).exec('ADD', withPorts, att));
  assert.is(e.code, 100, e.msg);
  assert.equal(await snapshot(host, conf), before, 'exhausted range');
  assert.equal(await ctrLinks(), ['lo']);

  // A port another attachment publishes: refused (114) before the container is usable, and rolled back.
  for (const id of ['fill1', 'fill2']) must(await cniRuntime({ host }).exec('DEL', conf, { containerId: id, ifname: 'eth0', netns: '' }));
  const owner = await host.createContainer('owner');
  must(await cniRuntime({ host }).exec('ADD', withPorts, { containerId: 'owner', netns: owner.netnsPath, ifname: 'eth0' }));
  const snap = await snapshot(host, conf);
  const c2 = await host.createContainer('second');
  const busy = failure(await cniRuntime({ host }).exec('ADD', withPorts, { containerId: 'second', netns: c2.netnsPath, ifname: 'eth0' }));
  assert.is(busy.code, 114, busy.msg);
  assert.match(busy.msg, /already published by container owner/);
  assert.equal(await snapshot(host, conf), snap, 'a refused port leaves nothing either');
});

test('a fresh host: a fault after the firewall step leaves no per-container rule (the shared tables stay)', async () => {
  const conf = bridgeConf({ isGateway: true, ipMasq: true, subnet: '10.43.0.0/24' });
  const ctr = await host.createContainer('c');
  const e = failure(
    await cniRuntime({ host, env: { NETPLUMB_FAULT: 'firewall' } }).exec('ADD', conf, { containerId: 'f', netns: ctr.netnsPath, ifname: 'eth0' }),
  );
  assert.match(e.msg, /fault injected/);
  assert.equal(await nftAttachments(host), { chains: [], rules: 0, elements: [] });
  assert.equal(
    (await links(host)).map((x) => x.ifname),
    ['lo'],
    'the bridge it created went too',
  );
  assert.equal([...reservations(join(conf.ipam.dataDir, 'npnet'))], []);
  const r = await run(['nft', 'list', 'tables'], { netns: host.netnsPath });
  assert.match(r.stdout, /table inet netplumb/, 'the skeleton stays for the next ADD (it holds no container)');
});

test.run();
