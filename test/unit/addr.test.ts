/**
 * lib/addr: address, prefix and MAC parsing and printing. The oracle for arbitrary addresses is
 * `ip-cidr`/`ip-address` (independent code); the Go-specific rules (names of host-local's store files) and
 * iproute2's printing of kernel bytes are pinned by literal cases.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import IPCIDR from 'ip-cidr';
import {
  AddressError,
  afOf,
  AF_INET,
  AF_INET6,
  AF_UNSPEC,
  bytesToIp,
  canonicalCidr,
  canonicalIp,
  cidrContains,
  cidrOverlaps,
  familyOf,
  familyOfAf,
  formatIp,
  ipToBytes,
  lastOf,
  parseCidr,
  parseIp,
  tryParseCidr,
  tryParseIp,
} from '../../lib/addr/ip.js';
import { bytesToMac, macToBytes, parseMac, parseUnicastMac, randomMac, tryParseMac } from '../../lib/addr/mac.js';
import { ERR, NetplumbError } from '../../lib/errors.js';

/** The AddressError `f` throws (fails the test if it throws nothing or something else). */
function addressError(f: () => unknown): AddressError {
  try {
    f();
  } catch (e) {
    assert.instance(e, AddressError);
    assert.instance(e, NetplumbError);
    return e as AddressError;
  }
  assert.unreachable('no error');
  throw new Error('unreachable');
}

function rand(bits: number): bigint {
  let v = 0n;
  for (let i = 0; i < bits; i += 16) v = (v << 16n) | BigInt(Math.floor(Math.random() * 65536));
  return v & ((1n << BigInt(bits)) - 1n);
}

test('IPv4 parses and prints as dotted quads; Go refuses leading zeros and out-of-range fields', () => {
  assert.equal(tryParseIp('10.1.0.2'), { family: 4, value: 0x0a010002n });
  assert.is(formatIp({ family: 4, value: 0xc0a80101n }), '192.168.1.1');
  for (const bad of ['010.1.1.1', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.-1', ' 1.2.3.4', '1.2.3.4 ', '', 'a.b.c.d', '1..2.3']) {
    assert.is(tryParseIp(bad), undefined, bad);
  }
});

test('IPv6 prints in RFC 5952 form as Go does (the reference names its files so)', () => {
  const cases: Array<[string, string]> = [
    ['fd00::2', 'fd00::2'],
    ['FD00:0:0:0:0:0:0:A', 'fd00::a'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // leftmost of two equal runs
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not elided
    ['0:0:0:0:0:0:0:0', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:0db8:0000:0000:0000:ff00:0042:8329', '2001:db8::ff00:42:8329'],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], // the longer run wins
    ['::1.2.3.4', '::102:304'], // deprecated compatible form: Go prints hex
  ];
  for (const [inp, out] of cases) assert.is(canonicalIp(inp), out, inp);
  for (const bad of ['1:2:3:4:5:6:7:8:9', '1::2::3', ':::', '12345::', 'fe80::1%eth0', 'g::1', '1:2:3:4:5:6:7::8:9']) {
    assert.is(tryParseIp(bad), undefined, bad);
  }
});

test('IPv4-mapped IPv6 is IPv4 (Go canonicalises with To4)', () => {
  assert.equal(tryParseIp('::ffff:10.6.0.9'), { family: 4, value: 0x0a060009n });
  assert.equal(tryParseIp('::ffff:a06:9'), { family: 4, value: 0x0a060009n });
  assert.is(tryParseCidr('::ffff:10.0.0.0/120'), undefined, 'a mapped address with an IPv6 mask is a version mismatch');
});

test('random addresses round-trip and agree with ip-cidr', () => {
  for (let i = 0; i < 500; i++) {
    const v4 = rand(32);
    const t4 = formatIp({ family: 4, value: v4 });
    assert.is(IPCIDR.createAddress(t4).bigInteger().toString(), v4.toString(), t4);
    assert.equal(tryParseIp(t4), { family: 4, value: v4 });
    let v6 = rand(128);
    if (i % 3 === 0) v6 &= ~(0xffffffffn << 32n); // runs of zeros
    if (i % 5 === 0) v6 &= (1n << 64n) - 1n;
    if (v6 >> 32n === 0xffffn) continue; // mapped: IPv4 by design
    const t6 = formatIp({ family: 6, value: v6 });
    const addr = IPCIDR.createAddress(t6);
    assert.is(addr.bigInteger().toString(), v6.toString(), t6);
    assert.is(t6, (addr as any).correctForm(), 'RFC 5952 form agrees with ip-address');
    assert.equal(tryParseIp(t6), { family: 6, value: v6 });
    assert.equal(tryParseIp((addr as any).canonicalForm()), { family: 6, value: v6 }, 'the full form parses too');
  }
});

test('CIDRs: network, last address and containment agree with ip-cidr', () => {
  for (const c of ['10.1.0.0/24', '10.1.0.77/29', '192.168.0.0/16', '0.0.0.0/0', '10.0.0.1/32', 'fd00::/64', '2001:db8::1/127', 'fd00:1:2:3::/100']) {
    const p = parseCidr(c);
    const o = new IPCIDR(c);
    assert.is(p.network.toString(), (o.start({ type: 'bigInteger' }) as bigint).toString(), `${c} start`);
    assert.is(lastOf(p).toString(), (o.end({ type: 'bigInteger' }) as bigint).toString(), `${c} end`);
    for (let i = 0; i < 50; i++) {
      const probe = p.network + rand(p.family === 4 ? 12 : 20) - 2048n;
      if (probe < 0n) continue;
      const t = formatIp({ family: p.family, value: probe });
      assert.is(cidrContains(p, parseIp(t)), o.contains(t), `${t} in ${c}`);
    }
  }
  assert.is(tryParseCidr('10.1.0.0/33'), undefined);
  assert.is(tryParseCidr('10.1.0.0'), undefined);
  assert.is(tryParseCidr('10.1.0.0/'), undefined);
  assert.is(tryParseCidr('fd00::/129'), undefined);
  assert.is(tryParseCidr('nonsense'), undefined);
});

test('the throwing parsers name what they parsed and why; the code is ERR_INVALID_ADDRESS', () => {
  const e = addressError(() => parseIp('10.0.0.256', 'gateway'));
  assert.is(e.code, ERR.INVALID_ADDRESS);
  assert.is(e.object, '10.0.0.256');
  assert.match(e.message, /^invalid gateway: "10\.0\.0\.256" is not an IPv4 or IPv6 address$/);
  const cases: Array<[string, RegExp]> = [
    ['10.0.0.0/33', /bad prefix length "33" \(0-32\)/],
    ['fd00::/129', /bad prefix length "129" \(0-128\)/],
    ['10.0.0.0/x', /bad prefix length "x"/],
    ['10.0.0.0', /has no prefix length/],
    ['nonsense/8', /"nonsense" is not an IPv4 or IPv6 address/],
    ['::ffff:10.0.0.0/120', /IPv4-mapped address with an IPv6 prefix length/],
  ];
  for (const [text, why] of cases) {
    const c = addressError(() => parseCidr(text, 'subnet'));
    assert.is(c.code, 'ERR_INVALID_ADDRESS', text);
    assert.match(c.message, /^invalid subnet: /, text);
    assert.match(c.message, why, text);
  }
  assert.is(addressError(() => parseCidr(42 as unknown as string)).code, ERR.INVALID_ADDRESS, 'not a string');
});

test('a bare address is a host prefix only when asked ({bare: true}, as `ip addr add` reads it)', () => {
  assert.is(tryParseCidr('10.0.0.9'), undefined);
  assert.equal(tryParseCidr('10.0.0.9', { bare: true }), { family: 4, ip: 0x0a000009n, prefix: 32, network: 0x0a000009n });
  assert.is(tryParseCidr('fd00::1', { bare: true })?.prefix, 128);
  assert.is(canonicalCidr('fd00:0088:0000::0002/64'), 'fd00:88::2/64', 'host bits kept');
  assert.is(canonicalCidr('10.0.0.9'), '10.0.0.9/32');
  assert.is(canonicalCidr('10.0.0.9/ 8'), undefined);
  assert.is(canonicalIp('fe80::1%eth0'), undefined, 'no zones');
});

test('bytes: network order out, iproute2 text in (IPv4-mapped from the kernel prints as ::ffff:a.b.c.d)', () => {
  for (const ip of ['10.0.0.1', '0.0.0.0', '255.255.255.255', '::', '::1', 'fd00::2', '2001:db8::1:0:0:1', 'fe80::1:2:3:4', '2001:db8:0:1:1:1:1:1']) {
    assert.is(bytesToIp(ipToBytes(ip)), ip, ip);
  }
  assert.is(bytesToIp(ipToBytes('2001:0db8:0000:0000:0000:0000:0000:0001')), '2001:db8::1');
  assert.is(bytesToIp(ipToBytes('1:0:0:2:0:0:0:3')), '1:0:0:2::3', 'the longest zero run is compressed');
  assert.equal([...ipToBytes('::ffff:1.2.3.4')], [1, 2, 3, 4], 'IPv4-mapped is IPv4 (Go To4, as vishvananda/netlink sends it)');
  const mapped = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3]);
  assert.is(bytesToIp(mapped), '::ffff:10.1.2.3');
  assert.is(addressError(() => ipToBytes('10.0.0.256')).code, ERR.INVALID_ADDRESS);
  assert.is(addressError(() => bytesToIp(Buffer.alloc(5))).code, ERR.INVALID_ADDRESS);
  assert.equal([...ipToBytes({ family: 6, value: 1n })], [...Buffer.alloc(15), 1]);
});

test('families: of text, and to and from the kernel AF_ numbers', () => {
  assert.is(familyOf('10.0.0.1'), 4);
  assert.is(familyOf('fd00::1'), 6);
  assert.is(addressError(() => familyOf('fd00::1::2')).code, ERR.INVALID_ADDRESS);
  assert.equal([afOf(4), afOf(6), afOf(undefined)], [AF_INET, AF_INET6, AF_UNSPEC]);
  assert.equal([AF_INET, AF_INET6], [2, 10]);
  assert.equal([familyOfAf(AF_INET), familyOfAf(AF_INET6)], [4, 6]);
});

test('overlap of networks agrees with containment both ways', () => {
  const pairs: Array<[string, string, boolean]> = [
    ['10.0.0.5/16', '10.0.1.1/24', true],
    ['10.0.1.1/24', '10.0.0.5/16', true],
    ['10.0.1.1/24', '10.0.2.1/24', false],
    ['fd00::1/64', 'fd00::2/64', true],
    ['fd00::1/64', 'fd01::1/64', false],
    ['10.0.0.1/8', 'fd00::1/8', false],
  ];
  for (const [a, b, want] of pairs) assert.is(cidrOverlaps(parseCidr(a), parseCidr(b)), want, `${a} ${b}`);
});

test('MACs: parse to canonical text, bytes both ways, unicast checks with ERR_INVALID_MAC', () => {
  assert.is(parseMac('AA:BB:CC:DD:EE:FE'), 'aa:bb:cc:dd:ee:fe');
  assert.is(parseMac('02-00-00-00-00-0A'), '02:00:00:00:00:0a');
  for (const bad of ['02:00:00:00:00', '02:00:00:00:00:00:00', '2:a:b:c:d:e', '02:00-00:00:00:00', 'zz:00:00:00:00:00', '', 7]) {
    assert.is(tryParseMac(bad), undefined, String(bad));
    const e = addressError(() => parseMac(bad, 'runtimeConfig.mac'));
    assert.is(e.code, ERR.INVALID_MAC);
    assert.match(e.message, /^invalid runtimeConfig\.mac: /);
  }
  assert.match(addressError(() => parseUnicastMac('01:00:5e:00:00:01')).message, /multicast/);
  assert.match(addressError(() => parseUnicastMac('00:00:00:00:00:00')).message, /all-zero/);
  assert.equal([...macToBytes('02:0a:0b:0c:0d:0e')], [2, 10, 11, 12, 13, 14]);
  assert.is(bytesToMac(macToBytes('02:0A:0B:0C:0D:0E')), '02:0a:0b:0c:0d:0e');
  assert.is(addressError(() => macToBytes('02:00:00:00:00')).code, ERR.INVALID_MAC);
  for (let i = 0; i < 50; i++) {
    const m = randomMac();
    assert.is(parseUnicastMac(m), m);
    assert.is(parseInt(m.slice(0, 2), 16) & 3, 2, `${m}: locally administered unicast`);
  }
});

test.run();
