/** The overlay's configuration: defaults, every refusal naming its key, and the subnets of a network. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseOverlayConfig, subnetsOf, nthAddress } from '../../lib/agent/overlay/config.js';

const base = { name: 'ovl', network: '10.244.0.0/16', etcd: { endpoints: ['http://192.0.2.9:2379'] }, underlay: 'eth0', node: 'h1' };
const tls = { endpoints: ['https://[2001:db8::9]:2379'], caFile: '/etc/etcd/ca.pem', certFile: '/etc/etcd/client.pem', keyFile: '/etc/etcd/client-key.pem' };

test('defaults', () => {
  const c = parseOverlayConfig(base);
  assert.equal(
    [c.subnetPrefix, c.vni, c.port, c.ttlSeconds, c.device, c.bridge, c.stateDir, c.etcd.prefix],
    [24, 1, 4789, 10, 'np-vx1', 'np-ovl1', '/run/netplumb/overlay', '/netplumb/overlay/ovl/'],
  );
  assert.is(parseOverlayConfig({ ...base, network: '10.244.9.9/16' }).network, '10.244.0.0/16');
  assert.is(parseOverlayConfig({ ...base, underlay: '192.0.2.1' }).underlay, '192.0.2.1');
  assert.is(parseOverlayConfig({ ...base, underlay: '2001:db8::1' }).underlay, '2001:db8::1');
});

test('TLS files are taken by name (read later, where the client is made); https without them uses the system CAs', () => {
  assert.equal(parseOverlayConfig({ ...base, etcd: tls }).etcd, { ...tls, prefix: '/netplumb/overlay/ovl/' });
  const { caFile: _, ...noCa } = tls;
  assert.equal(parseOverlayConfig({ ...base, etcd: noCa }).etcd, { ...noCa, prefix: '/netplumb/overlay/ovl/' });
  assert.equal(parseOverlayConfig({ ...base, etcd: { endpoints: tls.endpoints } }).etcd, { endpoints: tls.endpoints, prefix: '/netplumb/overlay/ovl/' });
});

test('bad input is refused with the key named', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ ...base, name: '../x' }, 'name'],
    [{ ...base, network: 'fd00::/64' }, 'network'],
    [{ ...base, subnetPrefix: 16 }, 'subnetPrefix'],
    [{ ...base, subnetPrefix: 31 }, 'subnetPrefix'],
    [{ ...base, vni: 0 }, 'vni'],
    [{ ...base, vni: 1.5 }, 'vni'],
    [{ ...base, port: 70000 }, 'port'],
    [{ ...base, etcd: { endpoints: [] } }, 'etcd.endpoints'],
    [{ ...base, etcd: { endpoints: [1] } }, 'etcd.endpoints'],
    [{ ...base, etcd: { endpoints: ['x'] } }, 'etcd.endpoints'],
    [{ ...base, etcd: { endpoints: ['http://192.0.2.9:2379'], prefix: 'rel' } }, 'etcd.prefix'],
    [{ ...base, etcd: { ...tls, caFile: 'ca.pem' } }, 'etcd.caFile'],
    [{ ...base, etcd: { ...tls, certFile: 7 } }, 'etcd.certFile'],
    [{ ...base, etcd: { ...tls, keyFile: undefined } }, 'etcd.keyFile'],
    [{ ...base, etcd: { ...tls, certFile: undefined } }, 'etcd.certFile'],
    [{ ...base, etcd: { ...tls, endpoints: ['https://192.0.2.9:2379', 'http://192.0.2.10:2379'] } }, 'etcd.endpoints'],
    [{ ...base, underlay: 'a/b' }, 'underlay'],
    [{ ...base, ttlSeconds: 1 }, 'ttlSeconds'],
    [{ ...base, device: 'a-name-far-too-long' }, 'device'],
    [{ ...base, node: '-x' }, 'node'],
    [{ ...base, stateDir: 'run' }, 'stateDir'],
  ];
  for (const [raw, key] of cases) {
    try {
      parseOverlayConfig(raw);
      assert.unreachable(`accepted ${JSON.stringify(raw)}`);
    } catch (e) {
      assert.is((e as { object?: string }).object, key, (e as Error).message);
      assert.match((e as Error).message, key);
    }
  }
  assert.throws(() => parseOverlayConfig([]));
});

test('subnets of the network, in order, and addresses in a subnet', () => {
  const all = [...subnetsOf({ network: '10.244.0.0/22', subnetPrefix: 24 })];
  assert.equal(all, ['10.244.0.0/24', '10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24']);
  assert.is(nthAddress('10.244.3.0/24', 1), '10.244.3.1');
  assert.is(nthAddress('10.244.3.0/24', 0), '10.244.3.0');
});

test.run();
