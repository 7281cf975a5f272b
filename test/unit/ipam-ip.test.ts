/**
 * Address parsing and printing. The oracle for arbitrary addresses is `ip-cidr`/`ip-address` (independent
 * code); the Go-specific rules (names of host-local's store files) are pinned by literal cases.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import IPCIDR from 'ip-cidr';
import { canonicalIp, cidrContains, formatIp, lastOf, parseCidr, parseIp } from '../../lib/ipam/ip.js';

function rand(bits: number): bigint {
  let v = 0n;
  for (let i = 0; i < bits; i += 16) v = (v << 16n) | BigInt(Math.floor(Math.random() * 65536));
  return v & ((1n << BigInt(bits)) - 1n);
}

test('IPv4 parses and prints as dotted quads; Go refuses leading zeros and out-of-range fields', () => {
  assert.equal(parseIp('10.1.0.2'), { family: 4, value: 0x0a010002n });
  assert.is(formatIp({ family: 4, value: 0xc0a80101n }), '192.168.1.1');
  for (const bad of ['010.1.1.1', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.-1', ' 1.2.3.4', '1.2.3.4 ', '', 'a.b.c.d', '1..2.3']) {
    assert.is(parseIp(bad), undefined, bad);
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
    assert.is(parseIp(bad), undefined, bad);
  }
});

test('IPv4-mapped IPv6 is IPv4 (Go canonicalises with To4)', () => {
  assert.equal(parseIp('::ffff:10.6.0.9'), { family: 4, value: 0x0a060009n });
  assert.equal(parseIp('::ffff:a06:9'), { family: 4, value: 0x0a060009n });
  assert.is(parseCidr('::ffff:10.0.0.0/120'), undefined, 'a mapped address with an IPv6 mask is a version mismatch');
});

test('random addresses round-trip and agree with ip-cidr', () => {
  for (let i = 0; i < 500; i++) {
    const v4 = rand(32);
    const t4 = formatIp({ family: 4, value: v4 });
    assert.is(IPCIDR.createAddress(t4).bigInteger().toString(), v4.toString(), t4);
    assert.equal(parseIp(t4), { family: 4, value: v4 });
    let v6 = rand(128);
    if (i % 3 === 0) v6 &= ~(0xffffffffn << 32n); // runs of zeros
    if (i % 5 === 0) v6 &= (1n << 64n) - 1n;
    if (v6 >> 32n === 0xffffn) continue; // mapped: IPv4 by design
    const t6 = formatIp({ family: 6, value: v6 });
    const addr = IPCIDR.createAddress(t6);
    assert.is(addr.bigInteger().toString(), v6.toString(), t6);
    assert.is(t6, (addr as any).correctForm(), 'RFC 5952 form agrees with ip-address');
    assert.equal(parseIp(t6), { family: 6, value: v6 });
    assert.equal(parseIp((addr as any).canonicalForm()), { family: 6, value: v6 }, 'the full form parses too');
  }
});

test('CIDRs: network, last address and containment agree with ip-cidr', () => {
  for (const c of ['10.1.0.0/24', '10.1.0.77/29', '192.168.0.0/16', '0.0.0.0/0', '10.0.0.1/32', 'fd00::/64', '2001:db8::1/127', 'fd00:1:2:3::/100']) {
    const p = parseCidr(c)!;
    const o = new IPCIDR(c);
    assert.is(p.network.toString(), (o.start({ type: 'bigInteger' }) as bigint).toString(), `${c} start`);
    assert.is(lastOf(p).toString(), (o.end({ type: 'bigInteger' }) as bigint).toString(), `${c} end`);
    for (let i = 0; i < 50; i++) {
      const probe = p.network + rand(p.family === 4 ? 12 : 20) - 2048n;
      if (probe < 0n) continue;
      const t = formatIp({ family: p.family, value: probe });
      assert.is(cidrContains(p, parseIp(t)!), o.contains(t), `${t} in ${c}`);
    }
  }
  assert.is(parseCidr('10.1.0.0/33'), undefined);
  assert.is(parseCidr('10.1.0.0'), undefined);
  assert.is(parseCidr('10.1.0.0/'), undefined);
  assert.is(parseCidr('fd00::/129'), undefined);
  assert.is(parseCidr('nonsense'), undefined);
});

test.run();
