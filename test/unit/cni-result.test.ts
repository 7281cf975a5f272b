/** Result types: every supported version parsed into the 1.1.0 model and printed back, both ways. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertRejects } from '../fixtures/assert.js';
import { CniError } from '../../lib/cni/errors.js';
import { convertResult, formatResult, parseResult, type CniResult } from '../../lib/cni/types.js';
import { SUPPORTED_VERSIONS } from '../../lib/cni/version.js';

const full: CniResult = {
  cniVersion: '1.1.0',
  interfaces: [
    { name: 'cni0', mac: '0a:58:0a:01:00:01' },
    { name: 'veth1234abcd', mac: '0a:58:0a:01:00:02', mtu: 1400 },
    { name: 'eth0', mac: '0a:58:0a:01:00:03', mtu: 1400, sandbox: '/var/run/netns/x', socketPath: '/run/vhost.sock', pciID: '0000:00:1f.0' },
  ],
  ips: [{ address: '10.1.0.3/24', gateway: '10.1.0.1', interface: 2 }, { address: 'fd00::3/64', gateway: 'fd00::1', interface: 2 }, { address: '10.9.0.3/24' }],
  routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1', mtu: 1300, advmss: 1260, priority: 10, table: 100, scope: 0 }, { dst: 'fd00:1::/64' }],
  dns: { nameservers: ['10.1.0.1'], domain: 'example.org', search: ['a.example.org'], options: ['ndots:2'] },
};

const legacy = (v: string) => ({
  cniVersion: v,
  interfaces: [
    { name: 'cni0', mac: '0a:58:0a:01:00:01' },
    { name: 'veth1234abcd', mac: '0a:58:0a:01:00:02' },
    { name: 'eth0', mac: '0a:58:0a:01:00:03', sandbox: '/var/run/netns/x' },
  ],
  ips: [
    { version: '4', interface: 2, address: '10.1.0.3/24', gateway: '10.1.0.1' },
    { version: '6', interface: 2, address: 'fd00::3/64', gateway: 'fd00::1' },
    { version: '4', address: '10.9.0.3/24' },
  ],
  routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }, { dst: 'fd00:1::/64' }],
  dns: { nameservers: ['10.1.0.1'], domain: 'example.org', search: ['a.example.org'], options: ['ndots:2'] },
});

test("1.1.0 → 0.3.0/0.3.1/0.4.0: ips get version, 1.x-only fields go, field order is libcni's", () => {
  for (const v of ['0.3.0', '0.3.1', '0.4.0']) {
    assert.equal(convertResult(full, v), legacy(v));
    assert.is(formatResult(full, v), JSON.stringify(legacy(v), null, 4));
  }
});

test('1.1.0 → 1.0.0 and 1.1.0 keep every field (libcni copies them)', () => {
  for (const v of ['1.0.0', '1.1.0']) {
    const out = convertResult(full, v);
    assert.equal(out, { ...full, cniVersion: v });
    assert.equal(Object.keys((out.ips as object[])[0]!), ['interface', 'address', 'gateway']);
  }
});

test('0.x → model → 0.x round-trips exactly; 0.x → 1.x drops version', () => {
  for (const v of ['0.3.0', '0.3.1', '0.4.0']) {
    const model = parseResult(legacy(v));
    assert.is(model.cniVersion, '1.1.0');
    assert.not.ok('version' in model.ips![0]!);
    assert.equal(convertResult(model, v), legacy(v));
    const up = convertResult(model, '1.0.0');
    assert.equal((up.ips as object[])[0], { interface: 2, address: '10.1.0.3/24', gateway: '10.1.0.1' });
  }
});

test('every version pair converts through the model without losing what both versions have', () => {
  for (const from of SUPPORTED_VERSIONS) {
    const src = convertResult(full, from);
    for (const to of SUPPORTED_VERSIONS) {
      const out = convertResult(parseResult(src), to);
      const direct = convertResult(full, to);
      if (from.startsWith('0.') && !to.startsWith('0.')) {
        // What 0.x cannot carry (mtu, socketPath, pciID, route attributes) is gone; the rest is equal.
        assert.equal(convertResult(parseResult(out), from), src, `${from}→${to}→${from}`);
      } else {
        assert.equal(out, direct, `${from}→${to}`);
      }
    }
  }
});

test('dns: always present in 0.x (even empty), left out of 1.x when empty; IPAM results have no interfaces', () => {
  const ipam: CniResult = { cniVersion: '1.1.0', ips: [{ address: '10.1.0.2/24', gateway: '10.1.0.1' }] };
  assert.equal(convertResult(ipam, '0.4.0'), { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.1.0.2/24', gateway: '10.1.0.1' }], dns: {} });
  assert.equal(convertResult(ipam, '1.0.0'), { cniVersion: '1.0.0', ips: [{ address: '10.1.0.2/24', gateway: '10.1.0.1' }] });
  assert.equal(parseResult({ cniVersion: '1.0.0', ips: [], dns: {} }), { cniVersion: '1.1.0', ips: [] });
});

test('what reference meta plugins print is accepted: version "" (passed through), dns {} in 1.0.0', () => {
  const fromPortmap = {
    cniVersion: '0.3.1',
    interfaces: [{ name: 'eth0', sandbox: '/x' }],
    ips: [{ version: '', interface: 0, address: '10.1.0.2/24', gateway: '10.1.0.1' }],
    dns: {},
  };
  assert.equal(parseResult(fromPortmap), {
    cniVersion: '1.1.0',
    interfaces: [{ name: 'eth0', sandbox: '/x' }],
    ips: [{ address: '10.1.0.2/24', gateway: '10.1.0.1', interface: 0 }],
  });
});

test('a Result without cniVersion is read as the given default (libcni parses prevResult so)', () => {
  const r = parseResult({ ips: [{ version: '4', address: '10.1.0.2/24' }] }, { defaultVersion: '0.4.0' });
  assert.equal(r.ips, [{ address: '10.1.0.2/24' }]);
});

test('malformed Results are refused with the asked code, naming the field', async () => {
  const bad: Array<[unknown, RegExp]> = [
    ['nope', /not a JSON object/],
    [{ cniVersion: '1.0.0', ips: {} }, /ips must be a list/],
    [{ cniVersion: '1.0.0', ips: [{ address: '10.1.0.2' }] }, /ips\[0\]\.address "10\.1\.0\.2" is not an address with a prefix/],
    [{ cniVersion: '1.0.0', ips: [{ address: '10.1.0.2/24', gateway: 'x' }] }, /ips\[0\]\.gateway "x"/],
    [{ cniVersion: '1.0.0', ips: [{ address: '10.1.0.2/24', interface: -1 }] }, /interface must be a non-negative integer/],
    [{ cniVersion: '1.0.0', interfaces: [{ name: 'a' }], ips: [{ address: '10.1.0.2/24', interface: 1 }] }, /interface 1 is not an index/],
    [{ cniVersion: '1.0.0', interfaces: [{ mac: 'x' }] }, /interfaces\[0\]\.name is missing/],
    [{ cniVersion: '1.0.0', routes: [{ dst: '0.0.0.0/0', gw: 'x' }] }, /routes\[0\]\.gw "x"/],
    [{ cniVersion: '1.0.0', routes: [{ gw: '10.0.0.1' }] }, /routes\[0\]\.dst is missing/],
    [{ cniVersion: '1.0.0', dns: { nameservers: 'x' } }, /dns\.nameservers must be a list of strings/],
  ];
  for (const [raw, re] of bad) {
    {
      const e = await assertRejects(
        () => parseResult(raw, { code: 105, what: 'Result of plugin x' }),
        { instance: CniError, cniCode: 105, message: /^invalid Result of plugin x: / },
        JSON.stringify(raw),
      );
      assert.match((e as Error).message, re);
    }
  }
  for (const v of ['0.2.0', '0.1.0', '2.0.0', 7]) {
    await assertRejects(() => parseResult({ cniVersion: v }), { cniCode: 1 }, String(v));
  }
  assert.throws(
    () => convertResult(full, '0.2.0'),
    (e: unknown) => (e as CniError).cniCode === 1,
  );
});

test.run();
