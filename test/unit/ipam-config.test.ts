/** host-local's configuration: forms, defaults, and every validation error. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertRejects } from '../fixtures/assert.js';
import { parseIpamConfig, DEFAULT_DATA_DIR } from '../../lib/ipam/config.js';
import { IpamError } from '../../lib/ipam/errors.js';
import { formatIp } from '../../lib/addr/ip.js';
import { rangeSetSize, rangeSetText, rangeText, type Range } from '../../lib/ipam/range.js';

const net = (ipam: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  cniVersion: '1.0.0',
  name: 'net1',
  ...extra,
  ipam: { type: 'host-local', dataDir: '/run/ipam-test', ...ipam },
});

const ip = (r: Range, v: bigint) => formatIp({ family: r.family, value: v });

/** parseIpamConfig refuses `conf` with ERR_IPAM_CONFIG and a message matching `pattern`. */
const rejects = (conf: unknown, pattern: RegExp, envIp?: string) =>
  assertRejects(() => parseIpamConfig(conf, { envIp }), { instance: IpamError, code: 'ERR_IPAM_CONFIG', message: pattern }, JSON.stringify(conf));

test("defaults are host-local's: gateway .1, range .1–broadcast−1 (v4) or the last address (v6)", () => {
  const c = parseIpamConfig(net({ ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00::/120' }]] }));
  const [v4] = c.rangeSets[0]!;
  const [v6] = c.rangeSets[1]!;
  assert.is(ip(v4!, v4!.gateway), '10.1.0.1');
  assert.is(rangeText(v4!), '10.1.0.1-10.1.0.254');
  assert.is(ip(v6!, v6!.gateway), 'fd00::1');
  assert.is(rangeText(v6!), 'fd00::1-fd00::ff');
  assert.is(rangeSetSize(c.rangeSets[0]!), 253n, '.1 is the gateway: .2–.254');
  assert.is(c.dataDir, '/run/ipam-test');
  assert.is(c.name, 'net1');
  assert.equal(c.routes, []);
  assert.is(parseIpamConfig({ name: 'x', ipam: { subnet: '10.0.0.0/8' } }).dataDir, DEFAULT_DATA_DIR);
});

test('explicit rangeStart, rangeEnd and gateway are kept; /30 and /126 are the smallest allowed', () => {
  const c = parseIpamConfig(
    net({ ranges: [[{ subnet: '10.10.0.0/16', rangeStart: '10.10.1.20', rangeEnd: '10.10.3.50', gateway: '10.10.0.254' }, { subnet: '172.16.5.0/24' }]] }),
  );
  assert.is(rangeSetText(c.rangeSets[0]!), '10.10.1.20-10.10.3.50,172.16.5.1-172.16.5.254');
  assert.is(ip(c.rangeSets[0]![0]!, c.rangeSets[0]![0]!.gateway), '10.10.0.254');
  const small = parseIpamConfig(net({ ranges: [[{ subnet: '10.2.0.0/30' }], [{ subnet: 'fd01::/126' }]] }));
  assert.is(rangeSetSize(small.rangeSets[0]!), 1n);
  assert.is(rangeSetSize(small.rangeSets[1]!), 2n, 'IPv6 has no broadcast: ::2 and ::3');
});

test('/31, /32, /127 and /128 are too small, as in host-local', async () => {
  for (const s of ['10.2.0.0/31', '10.2.0.1/32', 'fd01::/127', 'fd01::1/128']) await rejects(net({ ranges: [[{ subnet: s }]] }), /too small to allocate from/);
});

test("the legacy single-range form, runtimeConfig.ipRanges and ranges are combined in host-local's order", () => {
  const c = parseIpamConfig(
    net(
      { subnet: '10.6.0.0/24', gateway: '10.6.0.254', rangeStart: '10.6.0.10', ranges: [[{ subnet: 'fd00::/64' }]] },
      { runtimeConfig: { ipRanges: [[{ subnet: '192.168.7.0/24' }]] } },
    ),
  );
  assert.equal(c.rangeSets.map(rangeSetText), ['192.168.7.1-192.168.7.254', '10.6.0.10-10.6.0.254', 'fd00::1-fd00::ffff:ffff:ffff:ffff']);
});

test('invalid subnets: missing, malformed, host bits set', async () => {
  await rejects(net({ ranges: [[{}]] }), /range set 0: range has no subnet/);
  await rejects(net({ ranges: [[{ subnet: 'nonsense' }]] }), /invalid CIDR address: nonsense/);
  await rejects(net({ ranges: [[{ subnet: '10.2.0.5/24' }]] }), /host bits set.*network address is 10\.2\.0\.0/);
  await rejects(net({ ranges: [[{ subnet: 'fd00::1/64' }]] }), /host bits set.*fd00::/);
  await rejects(net({ ranges: [[{ subnet: 42 }]] }), /subnet must be a string/);
});

test('gateway outside the subnet, rangeStart after rangeEnd, bounds outside or at network/broadcast', async () => {
  await rejects(net({ ranges: [[{ subnet: '10.2.0.0/24', gateway: '10.3.0.1' }]] }), /gateway 10\.3\.0\.1 not in network 10\.2\.0\.0\/24/);
  await rejects(
    net({ ranges: [[{ subnet: '10.2.0.0/24', rangeStart: '10.2.0.100', rangeEnd: '10.2.0.50' }]] }),
    /rangeStart 10\.2\.0\.100 is after rangeEnd 10\.2\.0\.50/,
  );
  await rejects(net({ ranges: [[{ subnet: '10.2.0.0/24', rangeStart: '10.3.0.100' }]] }), /rangeStart 10\.3\.0\.100 not in network/);
  await rejects(net({ ranges: [[{ subnet: '10.2.0.0/24', rangeEnd: '10.2.0.255' }]] }), /rangeEnd 10\.2\.0\.255 is the broadcast address/);
  await rejects(net({ ranges: [[{ subnet: '10.2.0.0/24', gateway: '10.2.0.0' }]] }), /gateway 10\.2\.0\.0 is the network address/);
  await rejects(net({ ranges: [[{ subnet: '10.2.0.0/24', gateway: 'fd00::1' }]] }), /not the same protocol/);
  await rejects(net({ ranges: [[{ subnet: 'fd00::/64', rangeStart: 'fd00::20', rangeEnd: 'fd00::10' }]] }), /rangeStart fd00::20 is after rangeEnd fd00::10/);
  await rejects(net({ ranges: [[{ subnet: 'fd00::/64', gateway: 'fd01::1' }]] }), /gateway fd01::1 not in network fd00::\/64/);
  await rejects(net({ ranges: [[{ subnet: '10.2.0.0/24', rangeStart: 'x' }]] }), /rangeStart "x" is not an IP address/);
});

test('overlaps: between range sets, within a set; mixed families; empty sets', async () => {
  await rejects(net({ ranges: [[{ subnet: '10.5.0.0/24' }], [{ subnet: '10.5.0.0/16' }]] }), /range set 0 overlaps with 1/);
  await rejects(
    net({ ranges: [[{ subnet: '10.5.0.0/24' }, { subnet: '10.5.0.0/25' }]] }),
    /subnets 10\.5\.0\.1-10\.5\.0\.254 and 10\.5\.0\.1-10\.5\.0\.126 overlap/,
  );
  await rejects(net({ ranges: [[{ subnet: 'fd00::/64' }], [{ subnet: 'fd00::/48' }]] }), /range set 0 overlaps with 1/);
  await rejects(net({ ranges: [[{ subnet: '10.5.0.0/24' }, { subnet: 'fd00::/64' }]] }), /mixed address families/);
  await rejects(net({ ranges: [[]] }), /empty range set/);
  await rejects(net({ ranges: [] }), /no IP ranges specified/);
  await rejects(net({}), /no IP ranges specified/);
  await rejects({ name: 'n' }, /missing 'ipam' key/);
  // Disjoint windows of one subnet do not overlap (host-local's rule), nor do v4 and v6 sets.
  const ok = parseIpamConfig(
    net({
      ranges: [
        [
          { subnet: '10.7.0.0/24', rangeStart: '10.7.0.3', rangeEnd: '10.7.0.7' },
          { subnet: '10.7.0.0/24', rangeStart: '10.7.0.10', rangeEnd: '10.7.0.12' },
        ],
        [{ subnet: 'fd00::/64' }],
      ],
    }),
  );
  assert.is(ok.rangeSets.length, 2);
});

test('requested addresses from CNI_ARGS IP, args.cni.ips and runtimeConfig.ips (with or without prefix)', async () => {
  const c = parseIpamConfig(
    net(
      { ranges: [[{ subnet: '10.6.0.0/24' }], [{ subnet: 'fd00::/64' }]] },
      { args: { cni: { ips: ['fd00::7'] } }, runtimeConfig: { ips: ['10.6.0.88/24'] } },
    ),
    { envIp: '10.6.0.77' },
  );
  assert.equal(c.requestedIps.map(formatIp), ['10.6.0.77', 'fd00::7', '10.6.0.88']);
  assert.equal(parseIpamConfig(net({ subnet: '10.6.0.0/24' }), { envIp: '::ffff:10.6.0.9' }).requestedIps.map(formatIp), ['10.6.0.9']);
  await rejects(net({ subnet: '10.6.0.0/24' }), /cannot understand ip "10\.6\.0\.5\/24" in CNI_ARGS IP/, '10.6.0.5/24');
  await rejects(net({ subnet: '10.6.0.0/24' }, { args: { cni: { ips: ['bogus'] } } }), /cannot understand ip "bogus" in args\.cni\.ips/);
  await rejects(net({ subnet: '10.6.0.0/24' }, { runtimeConfig: { ips: '10.6.0.1' } }), /runtimeConfig\.ips must be a list/);
});

test('routes, dataDir and resolvConf', async () => {
  const c = parseIpamConfig(
    net({
      subnet: '10.6.0.0/24',
      resolvConf: '/etc/resolv.conf',
      routes: [{ dst: '0.0.0.0/0' }, { dst: '192.168.0.0/16', gw: '10.6.0.5', priority: 10 }, { dst: 'fd00::/8' }],
    }),
  );
  assert.equal(c.routes, [{ dst: '0.0.0.0/0' }, { dst: '192.168.0.0/16', gw: '10.6.0.5', priority: 10 }, { dst: 'fd00::/8' }]);
  assert.is(c.resolvConf, '/etc/resolv.conf');
  await rejects(net({ subnet: '10.6.0.0/24', routes: [{ dst: 'nope' }] }), /invalid route 0: dst must be a CIDR/);
  await rejects(net({ subnet: '10.6.0.0/24', routes: [{ dst: '0.0.0.0/0', gw: 'fd00::1' }] }), /not of the family of dst/);
  await rejects(net({ subnet: '10.6.0.0/24', routes: [{ dst: '0.0.0.0/0', mtu: -1 }] }), /mtu must be a non-negative integer/);
  await rejects(net({ subnet: '10.6.0.0/24', dataDir: 'relative/dir' }), /dataDir must be an absolute path/);
});

test.run();
