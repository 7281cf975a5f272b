/** netplumb-bridge's configuration without privileges: the reference's defaults, validation, derived names. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseRequest } from '../../lib/cni/request.js';
import { CniError } from '../../lib/cni/errors.js';
import { configMac, hostVethName, parseBridgeConf, parseVethAlias, vethAlias } from '../../lib/modes/bridge-config.js';
import { randomMac } from '../../lib/addr/mac.js';

const req = (conf: object, args = '') =>
  parseRequest(
    { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'ctr1', CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0', CNI_ARGS: args },
    Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'net1', type: 'netplumb-bridge', ...conf })),
  );
const code = (f: () => unknown): number => {
  try {
    f();
  } catch (e) {
    return (e as CniError).cniCode;
  }
  return 0;
};

test("defaults: the reference bridge plugin's, netplumb0, isolation on", () => {
  assert.equal(parseBridgeConf(req({})), {
    network: 'net1',
    bridge: 'netplumb0',
    isGateway: false,
    isDefaultGateway: false,
    forceAddress: false,
    ipMasq: false,
    mtu: 0,
    hairpinMode: false,
    promiscMode: false,
    macspoofchk: false,
    enabledad: false,
    disableContainerInterface: false,
    portIsolation: false,
    isolate: true,
    allowBridges: [],
    icc: true,
    dns: undefined,
    hasIpam: false,
    mac: undefined,
    portMappings: [],
  });
  const c = parseBridgeConf(req({ isDefaultGateway: true, ipam: { type: 'host-local' }, dns: { nameservers: ['1.1.1.1'], search: [] } }));
  assert.ok(c.isGateway, 'isDefaultGateway implies isGateway');
  assert.ok(c.hasIpam);
  assert.equal(c.dns, { nameservers: ['1.1.1.1'] });
  assert.not.ok(parseBridgeConf(req({ ipam: {} })).hasIpam, 'an ipam without type is layer 2 (the reference: IPAM.Type != "")');
});

test('errors: 2 for VLANs, 7 for wrong types and combinations', () => {
  assert.is(
    code(() => parseBridgeConf(req({ vlan: 10 }))),
    2,
  );
  assert.is(
    code(() => parseBridgeConf(req({ vlanTrunk: [{ minID: 1, maxID: 3 }] }))),
    2,
  );
  assert.is(
    code(() => parseBridgeConf(req({ vlan: 0, vlanTrunk: [] }))),
    0,
    'vlan 0 and an empty trunk are no VLAN',
  );
  for (const bad of [
    { vlan: -1 },
    { vlan: 1.5 },
    { mtu: 67 },
    { mtu: '1500' },
    { ipMasq: 1 },
    { bridge: 'has space' },
    { bridge: 'x'.repeat(16) },
    { hairpinMode: true, promiscMode: true },
    { disableContainerInterface: true, ipam: { type: 'host-local' } },
    { allowBridges: 'br0' },
    { ipMasqBackend: 'ebpf' },
    { dns: { nameservers: '1.1.1.1' } },
    { runtimeConfig: { portMappings: [{ hostPort: 80 }] } },
    { runtimeConfig: { portMappings: [{ hostPort: 80, containerPort: 80, protocol: 'icmp' }] } },
    { runtimeConfig: { portMappings: [{ hostPort: 80, containerPort: 80, hostIP: 'localhost' }] } },
  ]) {
    assert.is(
      code(() => parseBridgeConf(req(bad))),
      7,
      JSON.stringify(bad),
    );
  }
  assert.is(
    code(() => parseBridgeConf(req({}, 'FOO=1'))),
    4,
    'unknown CNI_ARGS without IgnoreUnknown',
  );
  assert.is(
    code(() => parseBridgeConf(req({}, 'IgnoreUnknown=1;FOO=1'))),
    0,
  );
});

test('the container MAC: runtimeConfig beats args.cni beats CNI_ARGS; canonical form; multicast refused', () => {
  assert.is(parseBridgeConf(req({}, 'MAC=02:00:00:00:00:01')).mac, '02:00:00:00:00:01');
  assert.is(parseBridgeConf(req({ args: { cni: { mac: '02:00:00:00:00:02' } } }, 'MAC=02:00:00:00:00:01')).mac, '02:00:00:00:00:02');
  assert.is(parseBridgeConf(req({ args: { cni: { mac: '02:00:00:00:00:02' } }, runtimeConfig: { mac: '02-00-00-00-00-0A' } })).mac, '02:00:00:00:00:0a');
  assert.is(configMac('AA:BB:CC:DD:EE:FE', 'x'), 'aa:bb:cc:dd:ee:fe');
  assert.is(
    code(() => configMac('01:00:5e:00:00:01', 'x')),
    7,
  );
  assert.is(
    code(() => configMac('00:00:00:00:00:00', 'x')),
    7,
  );
  for (let i = 0; i < 50; i++) {
    const m = randomMac();
    assert.match(m, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    assert.is(parseInt(m.slice(0, 2), 16) & 3, 2, `${m}: locally administered unicast`);
  }
});

test('derived names: the host veth from container ID and interface, the alias and its parser', () => {
  const a = hostVethName('ctr1', 'eth0');
  assert.match(a, /^veth[0-9a-f]{8}$/);
  assert.is(hostVethName('ctr1', 'eth0'), a);
  assert.is.not(hostVethName('ctr1', 'eth1'), a);
  assert.is.not(hostVethName('ctr2', 'eth0'), a);
  assert.is.not(hostVethName('ctr1e', 'th0'), a, 'no ambiguity between ID and interface');
  const alias = vethAlias('net1', 'ctr1', 'eth0');
  assert.is(alias, 'netplumb net=net1 if=eth0 id=ctr1');
  assert.equal(parseVethAlias(alias), { network: 'net1', ifname: 'eth0', containerId: 'ctr1' });
  assert.is(parseVethAlias('someone else'), undefined);
  assert.is(parseVethAlias(undefined), undefined);
  assert.ok(vethAlias('n', 'x'.repeat(400), 'eth0').length <= 255, 'fits IFALIASZ');
});

test.run();
