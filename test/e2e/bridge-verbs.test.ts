/**
 * netplumb-bridge executed exactly as a runtime executes it (CniRuntime inside a harness Host): every verb in
 * every cniVersion, the Result's shape per version, DEL's idempotence, CHECK's drift reports, GC, STATUS,
 * configuration errors and their codes, the options of the reference's configuration. State is read with
 * `ip -j`, `nft -j`, /proc/sys and the IPAM store's files.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sandboxed, must } from '../../netns-harness/index.js';
import { bridgeConf, failure, links, nftAttachments, reservations, sysctl, vethNames, VERSIONS, hostPerTest } from '../fixtures/bridge-lab.js';
import { cniRuntime } from '../fixtures/cni-runtime.js';

await sandboxed();

const host = hostPerTest(test);

const HEX8 = /^veth[0-9a-f]{8}$/;

test("ADD, CHECK, DEL, GC and STATUS in every cniVersion; the Result has that version's shape", async () => {
  const rt = cniRuntime({ host });
  for (const [i, version] of VERSIONS.entries()) {
    const ctr = await host.createContainer(`c${i}`);
    const conf = bridgeConf({ cniVersion: version, isGateway: true, ipMasq: true, routes: [{ dst: '0.0.0.0/0' }] });
    const att = { containerId: `ctr-${i}`, netns: ctr.netnsPath, ifname: 'eth0' };
    const r = must(await rt.exec('ADD', conf, att)).json;
    assert.is(r.cniVersion, version);
    assert.is(r.interfaces.length, 3, version);
    assert.is(r.interfaces[0].name, 'netplumb0');
    assert.match(r.interfaces[1].name, HEX8);
    assert.equal(r.interfaces[2].name, 'eth0');
    assert.is(r.interfaces[2].sandbox, ctr.netnsPath);
    const legacy = version.startsWith('0.');
    assert.equal(
      r.ips,
      [
        legacy
          ? { version: '4', interface: 2, address: '10.77.0.2/24', gateway: '10.77.0.1' }
          : { interface: 2, address: '10.77.0.2/24', gateway: '10.77.0.1' },
      ],
      version,
    );
    assert.equal(r.routes, [{ dst: '0.0.0.0/0' }]);
    if (legacy) assert.equal(r.dns, {}, '0.x Results always carry dns');
    else assert.is(r.dns, undefined);

    // the kernel agrees with the Result
    const eth0 = (await ctr.ip<any[]>('addr', 'show', 'dev', 'eth0'))[0];
    assert.is(eth0.address, r.interfaces[2].mac);
    assert.ok(eth0.flags.includes('UP'));
    assert.equal(
      eth0.addr_info.filter((a: any) => a.family === 'inet').map((a: any) => `${a.local}/${a.prefixlen}`),
      ['10.77.0.2/24'],
    );
    const veth = (await links(host)).find((l) => l.ifname === r.interfaces[1].name);
    assert.is(veth.master, 'netplumb0');
    assert.is(veth.address, r.interfaces[1].mac);
    assert.is(veth.operstate, 'UP');
    assert.ok(existsSync(join(conf.ipam.dataDir, 'npnet', '10.77.0.2')));

    const check = await rt.exec('CHECK', { ...conf, prevResult: r }, att);
    if (version === '0.3.0' || version === '0.3.1') assert.is(failure(check).code, 1, `CHECK needs 0.4.0 (${version})`);
    else must(check);
    for (const verb of ['GC', 'STATUS'] as const) {
      const extra = verb === 'GC' ? { 'cni.dev/valid-attachments': [{ containerID: att.containerId, ifname: 'eth0' }] } : {};
      const o = await rt.exec(verb, { ...conf, ...extra }, {});
      if (version === '1.1.0') must(o);
      else assert.is(failure(o).code, 1, `${verb} needs 1.1.0 (${version})`);
    }
    assert.equal(await vethNames(host), [r.interfaces[1].name], 'GC kept the valid attachment');

    must(await rt.exec('DEL', { ...conf, prevResult: r }, att));
    assert.equal(await vethNames(host), []);
    assert.equal([...reservations(join(conf.ipam.dataDir, 'npnet'))], []);
    assert.equal((await nftAttachments(host)).chains, []);
    assert.ok(
      (await links(host)).some((l) => l.ifname === 'netplumb0'),
      'DEL never deletes the bridge',
    );
  }
});

test('the host veth is named after the container ID and interface; the container end is created inside the container', async () => {
  const rt = cniRuntime({ host });
  const ctr = await host.createContainer('c');
  const conf = bridgeConf({ isGateway: true });
  const r = must(await rt.exec('ADD', conf, { containerId: 'abc', netns: ctr.netnsPath, ifname: 'net1' })).json;
  must(await rt.exec('DEL', conf, { containerId: 'abc', ifname: 'net1' }));
  const again = must(await rt.exec('ADD', conf, { containerId: 'abc', netns: ctr.netnsPath, ifname: 'net1' })).json;
  assert.is(again.interfaces[1].name, r.interfaces[1].name, 'derived, not random: same container ID and interface, same name');
  const other = must(await rt.exec('ADD', conf, { containerId: 'abd', netns: (await host.createContainer('e')).netnsPath, ifname: 'net1' })).json;
  assert.is.not(other.interfaces[1].name, r.interfaces[1].name);
  assert.equal((await ctr.ip<any[]>('link', 'show')).map((l) => l.ifname).sort(), ['lo', 'net1']);
  assert.ok(!(await links(host)).some((l) => l.ifname === 'net1'), 'the container end never appeared in the host');
  const v = (await links(host)).find((l) => l.ifname === r.interfaces[1].name);
  assert.is(v.ifalias, 'netplumb net=npnet if=net1 id=abc', 'the host end says whose it is');
});

test('DEL is idempotent: twice, with an empty CNI_NETNS, and after the namespace is gone', async () => {
  const rt = cniRuntime({ host });
  const conf = bridgeConf({ isGateway: true, ipMasq: true, macspoofchk: true });
  const ctr = await host.createContainer('c');
  const att = { containerId: 'gone', netns: ctr.netnsPath, ifname: 'eth0' };
  const portMappings = [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }];
  must(await rt.exec('ADD', { ...conf, runtimeConfig: { portMappings } }, att));
  assert.ok((await nftAttachments(host)).chains.length > 0);
  await ctr.destroy(); // the namespace vanishes, and with it the veth pair
  must(await rt.exec('DEL', { ...conf, runtimeConfig: { portMappings } }, att));
  assert.equal(await nftAttachments(host), { chains: [], rules: 0, elements: [] }, 'rules removed without the namespace (plugins#810)');
  assert.equal([...reservations(join(conf.ipam.dataDir, 'npnet'))], []);
  must(await rt.exec('DEL', conf, att));
  must(await rt.exec('DEL', conf, { ...att, netns: '' }));
  must(await rt.exec('DEL', conf, { containerId: 'never-added', ifname: 'eth0' }));

  // With an empty CNI_NETNS while the container still runs: the host veth is found by its name.
  const c2 = await host.createContainer('c2');
  const att2 = { containerId: 'empty-netns', netns: c2.netnsPath, ifname: 'eth0' };
  must(await rt.exec('ADD', conf, att2));
  must(await rt.exec('DEL', conf, { ...att2, netns: '' }));
  assert.equal(await vethNames(host), []);
  assert.equal(
    (await c2.ip<any[]>('link', 'show')).map((l) => l.ifname),
    ['lo'],
    'the container end went with its peer',
  );
  assert.equal([...reservations(join(conf.ipam.dataDir, 'npnet'))], []);
});

test("DEL removes exactly its own veth: found by its alias when renamed, never another network's", async () => {
  const rt = cniRuntime({ host });
  const conf = bridgeConf({ isGateway: true });
  const ctr = await host.createContainer('c');
  const att = { containerId: 'mine', netns: ctr.netnsPath, ifname: 'eth0' };
  const r = must(await rt.exec('ADD', conf, att)).json;
  must(await rt.exec('DEL', { ...conf, name: 'someone-else' }, att));
  assert.equal(await vethNames(host), [r.interfaces[1].name], "another network's DEL of the same container and interface");
  await host.exec(['ip', 'link', 'set', r.interfaces[1].name, 'name', 'renamed0']);
  must(await rt.exec('DEL', conf, { ...att, netns: '' }));
  assert.equal(await vethNames(host), [], 'renamed, found by its alias');
  assert.equal(
    (await ctr.ip<any[]>('link', 'show')).map((l) => l.ifname),
    ['lo'],
  );
});

test('CHECK reports drift: addresses, routes, bridge port, interfaces, firewall rules, sysctls', async () => {
  const rt = cniRuntime({ host });
  const conf = bridgeConf({ isGateway: true, ipMasq: true, routes: [{ dst: '0.0.0.0/0' }] });
  const ctr = await host.createContainer('c');
  const att = { containerId: 'chk', netns: ctr.netnsPath, ifname: 'eth0' };
  const r = must(await rt.exec('ADD', conf, att)).json;
  const hostVeth = r.interfaces[1].name;
  const check = () => rt.exec('CHECK', { ...conf, prevResult: r }, att);
  must(await check());
  const drift = async (pattern: RegExp, break_: () => Promise<unknown>, repair?: () => Promise<unknown>) => {
    await break_();
    const e = failure(await check());
    assert.is(e.code, 112, e.msg);
    assert.match(e.msg, pattern);
    if (!repair) return;
    await repair();
    must(await check());
  };
  await drift(
    /route 0\.0\.0\.0\/0 via 10\.77\.0\.1 missing/,
    () => ctr.exec(['ip', 'route', 'del', 'default']),
    () => ctr.exec(['ip', 'route', 'add', 'default', 'via', '10.77.0.1']),
  );
  await drift(
    /address 10\.77\.0\.2\/24 missing from eth0/,
    () => ctr.exec(['ip', 'addr', 'del', '10.77.0.2/24', 'dev', 'eth0']),
    async () => {
      await ctr.exec(['ip', 'addr', 'add', '10.77.0.2/24', 'dev', 'eth0']);
      await ctr.exec(['ip', 'route', 'add', 'default', 'via', '10.77.0.1']);
    },
  );
  await drift(
    new RegExp(`${hostVeth} is not a port of bridge netplumb0`),
    () => host.exec(['ip', 'link', 'set', hostVeth, 'nomaster']),
    () => host.exec(['ip', 'link', 'set', hostVeth, 'master', 'netplumb0']),
  );
  await drift(
    /eth0 in the container is down/,
    () => ctr.exec(['ip', 'link', 'set', 'eth0', 'down']),
    async () => {
      await ctr.exec(['ip', 'link', 'set', 'eth0', 'up']);
      await ctr.exec(['ip', 'route', 'add', 'default', 'via', '10.77.0.1']);
    },
  );
  await drift(
    /net\.ipv4\.ip_forward is off/,
    () => host.exec(['sysctl', '-qw', 'net.ipv4.ip_forward=0']),
    () => host.exec(['sysctl', '-qw', 'net.ipv4.ip_forward=1']),
  );
  const chain = (await nftAttachments(host)).chains.find((c) => c.endsWith('-post'))!.split(' ')[1]!;
  await drift(/firewall: chain inet c-\S+-post \(post\) has 0 rules/, () => host.exec(['nft', 'flush', 'chain', 'inet', 'netplumb', chain]));
  // The IPAM's own CHECK runs first; its error comes back with its code.
  rmSync(join(conf.ipam.dataDir, 'npnet', '10.77.0.2'));
  assert.is(failure(await check()).code, 103);
  must(await rt.exec('DEL', conf, att));
});

test('errors: configuration, environment and conflicts, each with its code and before anything is touched', async () => {
  const rt = cniRuntime({ host });
  const ctr = await host.createContainer('c');
  const att = { containerId: 'err', netns: ctr.netnsPath, ifname: 'eth0' };
  const conf = bridgeConf({ isGateway: true });
  const nothingChanged = async () => {
    assert.equal(
      (await links(host)).map((l) => l.ifname),
      ['lo'],
      'no link was created',
    );
    assert.equal([...reservations(join(conf.ipam.dataDir, 'npnet'))], [], 'no address was reserved');
  };
  const cases: [string, any, any, number, RegExp][] = [
    ['vlan', { ...conf, vlan: 100 }, att, 2, /unsupported field "vlan": 100 .*VLAN filtering/],
    ['vlanTrunk', { ...conf, vlanTrunk: [{ id: 5 }] }, att, 2, /"vlanTrunk"/],
    ['vlan out of range', { ...conf, vlan: 5000 }, att, 7, /"vlan" must be an integer from 0 to 4094/],
    ['hairpin and promisc', { ...conf, hairpinMode: true, promiscMode: true }, att, 7, /hairpin mode and promiscuous mode/],
    ['a string for a boolean', { ...conf, ipMasq: 'yes' }, att, 7, /"ipMasq" must be true or false/],
    ['a bad MTU', { ...conf, mtu: 20 }, att, 7, /"mtu"/],
    ['a bad bridge name', { ...conf, bridge: 'a-very-long-bridge-name' }, att, 7, /"bridge" .* longer than 15 bytes/],
    ['a bad MAC', { ...conf, runtimeConfig: { mac: 'zz:00:00:00:00:01' } }, att, 7, /runtimeConfig\.mac/],
    ['a multicast MAC', { ...conf, args: { cni: { mac: '01:00:5e:00:00:01' } } }, att, 7, /multicast/],
    ['IPAM with disableContainerInterface', { ...conf, disableContainerInterface: true }, att, 7, /disableContainerInterface/],
    ['a bad port mapping', { ...conf, runtimeConfig: { portMappings: [{ hostPort: 0, containerPort: 80 }] } }, att, 7, /hostPort/],
    ['CNI_NETNS that does not exist', conf, { ...att, netns: '/proc/999999/ns/net' }, 3, /does not exist/],
    ["CNI_NETNS that is the plugin's own", conf, { ...att, netns: host.netnsPath }, 8, /own network namespace/],
    ['unknown CNI_ARGS', conf, { ...att, args: { FOO: 'bar' } }, 4, /CNI_ARGS/],
    ['an IPAM type with a path', { ...conf, ipam: { ...conf.ipam, type: '../host-local' } }, att, 7, /ipam\.type/],
  ];
  for (const [what, c, a, code, msg] of cases) {
    const e = failure(await rt.exec('ADD', c, a));
    assert.is(e.code, code, `${what}: ${e.msg}`);
    assert.match(e.msg, msg, what);
    await nothingChanged();
  }
  // A link that is not a bridge holds the bridge's name: refused (110); the IPAM reservation is given back.
  await host.exec(['ip', 'link', 'add', 'netplumb0', 'type', 'veth', 'peer', 'name', 'np0peer']);
  const e = failure(await rt.exec('ADD', conf, att));
  assert.is(e.code, 110, e.msg);
  assert.match(e.msg, /netplumb0 exists and is not a bridge/);
  assert.equal([...reservations(join(conf.ipam.dataDir, 'npnet'))], []);
  assert.equal(
    (await ctr.ip<any[]>('link', 'show')).map((l) => l.ifname),
    ['lo'],
  );
});

test('a repeated ADD of an attachment fails (111) and leaves the first one working', async () => {
  const rt = cniRuntime({ host });
  const ctr = await host.createContainer('c');
  const att = { containerId: 'twice', netns: ctr.netnsPath, ifname: 'eth0' };
  const conf = bridgeConf({ isGateway: true, ipMasq: true });
  const r = must(await rt.exec('ADD', conf, att)).json;
  const before = { links: await links(host), nft: await nftAttachments(host) };
  const e = failure(await rt.exec('ADD', conf, att));
  assert.is(e.code, 111, e.msg);
  assert.match(e.msg, /already exists/);
  assert.equal(
    (await links(host)).map((l) => l.ifname),
    before.links.map((l) => l.ifname),
  );
  assert.equal(await nftAttachments(host), before.nft);
  assert.equal([...reservations(join(conf.ipam.dataDir, 'npnet')).keys()], ['10.77.0.2'], 'the first reservation survives the failed ADD');
  must(await rt.exec('CHECK', { ...conf, prevResult: r }, att));
  // A bridge with another IPv4 address: refused unless forceAddress replaces it (the reference's rule).
  const c2 = await host.createContainer('c2');
  const other = bridgeConf({ isGateway: true, subnet: '10.78.0.0/24', name: 'net2' });
  const e2 = failure(await rt.exec('ADD', other, { containerId: 'o', netns: c2.netnsPath, ifname: 'eth0' }));
  assert.is(e2.code, 110, e2.msg);
  assert.match(e2.msg, /already has an IP address \(10\.77\.0\.1\/24\) different from 10\.78\.0\.1\/24/);
  must(await rt.exec('ADD', { ...other, forceAddress: true }, { containerId: 'o', netns: c2.netnsPath, ifname: 'eth0' }));
  const br = (await host.ip<any[]>('-4', 'addr', 'show', 'dev', 'netplumb0'))[0];
  assert.equal(
    br.addr_info.map((a: any) => `${a.local}/${a.prefixlen}`),
    ['10.78.0.1/24'],
  );
});

test('options: mtu, MAC (CNI_ARGS, args, capability), hairpin, promisc, port isolation, isDefaultGateway, dual stack, dns', async () => {
  const rt = cniRuntime({ host });
  const c1 = await host.createContainer('c1');
  const conf = bridgeConf({
    bridge: 'br-opts',
    isDefaultGateway: true,
    mtu: 1400,
    hairpinMode: true,
    portIsolation: true,
    subnet: ['10.79.0.0/24', 'fd79::/64'],
    dns: { nameservers: ['10.79.0.53'], search: ['example.test'] },
  });
  const r = must(
    await rt.exec('ADD', conf, { containerId: 'o1', netns: c1.netnsPath, ifname: 'eth0', args: { IgnoreUnknown: '1', MAC: '02:11:22:33:44:55' } }),
  ).json;
  assert.equal(r.ips, [
    { interface: 2, address: '10.79.0.2/24', gateway: '10.79.0.1' },
    { interface: 2, address: 'fd79::2/64', gateway: 'fd79::1' },
  ]);
  assert.equal(r.routes, [
    { dst: '0.0.0.0/0', gw: '10.79.0.1' },
    { dst: '::/0', gw: 'fd79::1' },
  ]);
  assert.equal(r.dns, { nameservers: ['10.79.0.53'], search: ['example.test'] });
  assert.is(r.interfaces[2].mac, '02:11:22:33:44:55');
  assert.is(r.interfaces[2].mtu, 1400);
  const eth0 = (await c1.ip<any[]>('addr', 'show', 'dev', 'eth0'))[0];
  assert.is(eth0.address, '02:11:22:33:44:55');
  assert.is(eth0.mtu, 1400);
  assert.equal(
    eth0.addr_info.filter((a: any) => a.scope === 'global').map((a: any) => `${a.local}/${a.prefixlen}`),
    ['10.79.0.2/24', 'fd79::2/64'],
  );
  assert.ok(!eth0.addr_info.some((a: any) => a.tentative), 'no DAD unless enabledad');
  const r4 = await c1.ip<any[]>('-4', 'route', 'show', 'default');
  const r6 = await c1.ip<any[]>('-6', 'route', 'show', 'default');
  assert.is(r4[0].gateway, '10.79.0.1');
  assert.is(r6[0].gateway, 'fd79::1');
  const l = await links(host);
  const br = l.find((x) => x.ifname === 'br-opts');
  const v = l.find((x) => x.ifname === r.interfaces[1].name);
  assert.is(br.mtu, 1400);
  assert.is(v.mtu, 1400);
  assert.is(v.linkinfo.info_slave_data.hairpin, true);
  assert.is(v.linkinfo.info_slave_data.isolated, true);
  assert.is(await sysctl(host, 'net/ipv4/ip_forward'), '1');
  assert.is(await sysctl(host, 'net/ipv6/conf/all/forwarding'), '1');
  assert.is(await sysctl(host, 'net/ipv6/conf/br-opts/accept_ra'), '0');
  assert.is(await sysctl(host, `net/ipv6/conf/${r.interfaces[1].name}/accept_ra`), '0');
  assert.is(await sysctl(c1, 'net/ipv4/conf/eth0/arp_notify'), '1');
  assert.is(await sysctl(c1, 'net/ipv6/conf/eth0/accept_dad'), '0');
  const br6 = (await host.ip<any[]>('-6', 'addr', 'show', 'dev', 'br-opts'))[0].addr_info.filter((a: any) => a.scope === 'global');
  assert.equal(
    br6.map((a: any) => `${a.local}/${a.prefixlen}`),
    ['fd79::1/64'],
  );

  // MAC from args.cni.mac beats CNI_ARGS, the capability beats both; promiscuous bridge; enabledad.
  const c2 = await host.createContainer('c2');
  const conf2 = bridgeConf({
    bridge: 'br-promisc',
    promiscMode: true,
    isGateway: true,
    enabledad: true,
    subnet: ['10.80.0.0/24', 'fd80::/64'],
    name: 'net2',
    args: { cni: { mac: '02:00:00:00:00:0a' } },
  });
  const r2 = must(
    await rt.exec(
      'ADD',
      { ...conf2, runtimeConfig: { mac: '02:00:00:00:00:0b' } },
      { containerId: 'o2', netns: c2.netnsPath, ifname: 'eth0', args: { IgnoreUnknown: '1', MAC: '02:00:00:00:00:0c' } },
    ),
  ).json;
  assert.is(r2.interfaces[2].mac, '02:00:00:00:00:0b');
  assert.ok((await links(host)).find((x) => x.ifname === 'br-promisc').flags.includes('PROMISC'));
  assert.is(await sysctl(c2, 'net/ipv6/conf/eth0/accept_dad'), '1');
  const a2 = (await c2.ip<any[]>('-6', 'addr', 'show', 'dev', 'eth0'))[0].addr_info.find((a: any) => a.local === 'fd80::2');
  assert.ok(a2 && !a2.tentative, 'with enabledad, ADD returns once DAD is done');
  const c3 = await host.createContainer('c3');
  const r3 = must(
    await rt.exec('ADD', conf2, { containerId: 'o3', netns: c3.netnsPath, ifname: 'eth0', args: { IgnoreUnknown: '1', MAC: '02:00:00:00:00:0c' } }),
  ).json;
  assert.is(r3.interfaces[2].mac, '02:00:00:00:00:0a');
  assert.equal(r3.routes ?? [], [], 'isGateway alone adds no default route');
  // isDefaultGateway and an IPAM default route without gw are one route (the reference fails with EEXIST)
  const c4 = await host.createContainer('c4');
  const conf4 = bridgeConf({ bridge: 'br-dflt', isDefaultGateway: true, subnet: '10.83.0.0/24', name: 'net4', routes: [{ dst: '0.0.0.0/0' }] });
  must(await rt.exec('ADD', conf4, { containerId: 'o4', netns: c4.netnsPath, ifname: 'eth0' }));
  assert.equal(
    (await c4.ip<any[]>('-4', 'route', 'show', 'default')).map((x) => x.gateway),
    ['10.83.0.1'],
  );
});

test('layer 2 only (no IPAM), and disableContainerInterface', async () => {
  const rt = cniRuntime({ host });
  const c1 = await host.createContainer('c1');
  const conf = { cniVersion: '1.1.0', name: 'l2', type: 'netplumb-bridge', bridge: 'br-l2' };
  const r = must(await rt.exec('ADD', conf, { containerId: 'l2a', netns: c1.netnsPath, ifname: 'eth0' })).json;
  assert.is(r.ips, undefined);
  assert.is(r.interfaces.length, 3);
  const eth0 = (await c1.ip<any[]>('addr', 'show', 'dev', 'eth0'))[0];
  assert.ok(eth0.flags.includes('UP'));
  assert.equal(
    eth0.addr_info.filter((a: any) => a.family === 'inet'),
    [],
  );
  must(await rt.exec('CHECK', { ...conf, prevResult: r }, { containerId: 'l2a', netns: c1.netnsPath, ifname: 'eth0' }));
  const c2 = await host.createContainer('c2');
  must(await rt.exec('ADD', { ...conf, disableContainerInterface: true }, { containerId: 'l2b', netns: c2.netnsPath, ifname: 'eth0' }));
  assert.not.ok((await c2.ip<any[]>('link', 'show', 'dev', 'eth0'))[0].flags.includes('UP'));
  for (const id of ['l2a', 'l2b']) must(await rt.exec('DEL', conf, { containerId: id, ifname: 'eth0' }));
  assert.equal(await vethNames(host), []);
});

test('prevResult: a chained netplumb-bridge keeps the earlier interfaces and addresses and shifts its indexes', async () => {
  const rt = cniRuntime({ host });
  const c = await host.createContainer('c');
  const prev = {
    cniVersion: '1.0.0',
    interfaces: [{ name: 'dummy0', sandbox: c.netnsPath }],
    ips: [{ address: '192.0.2.9/24', interface: 0 }],
    dns: { nameservers: ['192.0.2.53'] },
  };
  const conf = bridgeConf({ cniVersion: '1.0.0', isGateway: true });
  const r = must(await rt.exec('ADD', { ...conf, prevResult: prev }, { containerId: 'p', netns: c.netnsPath, ifname: 'eth1' })).json;
  assert.equal(r.interfaces.map((i: any) => i.name).slice(0, 2), ['dummy0', 'netplumb0']);
  assert.is(r.interfaces[3].name, 'eth1');
  assert.equal(r.ips, [
    { address: '192.0.2.9/24', interface: 0 },
    { interface: 3, address: '10.77.0.2/24', gateway: '10.77.0.1' },
  ]);
  assert.equal(r.dns, { nameservers: ['192.0.2.53'] });
});

test('GC releases what no valid attachment holds (IPAM, rules, host veths); STATUS reports an exhausted range', async () => {
  const rt = cniRuntime({ host });
  const conf = bridgeConf({ isGateway: true, ipMasq: true, subnet: '10.81.0.0/29' });
  const att = async (id: string) => ({ containerId: id, netns: (await host.createContainer(id)).netnsPath, ifname: 'eth0' });
  const keep = await att('keep');
  const lose = await att('lose');
  const rk = must(await rt.exec('ADD', conf, keep)).json;
  must(await rt.exec('ADD', conf, lose));
  assert.is((await vethNames(host)).length, 2);
  // a veth of another network on the same bridge is not this network's to collect
  const otherConf = bridgeConf({ ipMasq: true, subnet: '10.82.0.0/29', name: 'othernet' });
  const ro = must(await rt.exec('ADD', otherConf, await att('other'))).json;
  must(await rt.exec('GC', { ...conf, 'cni.dev/valid-attachments': [{ containerID: 'keep', ifname: 'eth0' }] }, {}));
  assert.equal(await vethNames(host), [rk.interfaces[1].name, ro.interfaces[1].name].sort());
  assert.equal([...reservations(join(conf.ipam.dataDir, 'npnet')).values()], ['keep\r\neth0']);
  const fw = await nftAttachments(host);
  assert.is(fw.elements.length, 2, `masquerade entries of keep and other only: ${fw.elements}`);
  must(await rt.exec('CHECK', { ...conf, prevResult: rk }, keep));

  // STATUS: a /29 has 5 addresses for containers; fill it.
  must(await rt.exec('STATUS', conf, {}));
  for (const id of ['s1', 's2', 's3', 's4']) must(await rt.exec('ADD', conf, await att(id)));
  const st = failure(await rt.exec('STATUS', conf, {}));
  assert.is(st.code, 50, st.msg);
  const full = failure(await rt.exec('ADD', conf, await att('s5')));
  assert.is(full.code, 100, full.msg);
});

test.run();
