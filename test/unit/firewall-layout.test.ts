import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertRejects } from '../fixtures/assert.js';
import {
  ipPrefix,
  attachmentTag,
  containerChain,
  desiredState,
  parseContainerChain,
  parseRuleComment,
  ruleComment,
  skeleton,
  type NormalizedSpec,
} from '../../lib/firewall/layout.js';
import { nftErrorCode } from '../../lib/firewall/nft.js';
import { addContainerRules, FirewallError } from '../../lib/firewall/index.js';

test('addresses as the rules write them: canonical text and network', () => {
  assert.equal(ipPrefix('10.88.7.2/21'), { family: 4, address: '10.88.7.2', prefix: 21, network: '10.88.0.0' });
  assert.equal(ipPrefix('fd00:0088:1:2:3:4:5:6/50'), { family: 6, address: 'fd00:88:1:2:3:4:5:6', prefix: 50, network: 'fd00:88:1::' });
  assert.equal(ipPrefix('10.0.0.9'), { family: 4, address: '10.0.0.9', prefix: 32, network: '10.0.0.9' });
  for (const bad of ['10.0.0.1/33', '10.0.0.1/1/2', 'x/8', '10.0.0.1/ 8']) assert.is(ipPrefix(bad), undefined, bad);
});

test('tags: stable, distinct per network, interface and container, and recognisable in chain names', () => {
  const t = attachmentTag('net', 'eth0', 'abc');
  assert.is(t, attachmentTag('net', 'eth0', 'abc'));
  assert.is.not(t, attachmentTag('net', 'eth1', 'abc'));
  assert.is.not(t, attachmentTag('net2', 'eth0', 'abc'));
  assert.is.not(t, attachmentTag('net', 'eth0', 'abd'));
  // The separator cannot be forged by moving characters between fields.
  assert.is.not(attachmentTag('n', 'eth0', 'x'), attachmentTag('n', 'eth', '0x'));
  assert.ok(t.startsWith(attachmentTag('net', 'other', 'other').split('-')[0]!), 'same network, same prefix');
  assert.equal(parseContainerChain(containerChain(t, 'dnat')), { tag: t, kind: 'dnat' });
  assert.is(parseContainerChain('postrouting'), undefined);
  assert.is(parseContainerChain(`c-${t}-other`), undefined);
});

test('rule comments: bounded, printable, parseable', () => {
  const c = ruleComment('0123abcd', { containerId: 'x'.repeat(200), ifname: 'eth0', network: 'n' });
  assert.ok(c.length <= 127);
  assert.is(parseRuleComment(c)?.digest, '0123abcd');
  const d = ruleComment('0123abcd', { containerId: 'id', ifname: 'eth0', network: 'näme "q"' });
  assert.not.match(d, /[^\x20-\x7e]/);
  assert.equal(parseRuleComment(d), { digest: '0123abcd', containerId: 'id', ifname: 'eth0', network: 'n?me "q"' });
  assert.is(parseRuleComment('someone else'), undefined);
});

const base: NormalizedSpec = {
  containerId: 'c1',
  ifname: 'eth0',
  network: 'n',
  bridge: 'br0',
  ips: [ipPrefix('10.88.0.2/16')!, ipPrefix('fd88::2/64')!],
  masquerade: false,
  portMappings: [],
  spoof: undefined,
  iccPort: undefined,
};

test('desired state: what each option adds', () => {
  const plain = desiredState(base);
  assert.equal(
    plain.chains.map((c) => c.kind),
    ['post'],
    'hairpin chain only',
  );
  assert.is(plain.chains[0]!.rules.length, 2, 'hairpin masquerade and return, no masquerade of outgoing traffic');
  assert.equal(
    plain.elements.map((e) => `${e.map} ${e.keyId}`),
    ['masq4 "10.88.0.2"', 'masq6 "fd88::2"'],
  );

  const masq = desiredState({ ...base, masquerade: true });
  assert.ok(masq.chains[0]!.rules.length > plain.chains[0]!.rules.length);
  assert.is.not(masq.chains[0]!.digest, plain.chains[0]!.digest, 'digest follows the rules');

  const ports = desiredState({
    ...base,
    portMappings: [
      { protocol: 'tcp', hostPort: 80, containerPort: 8080, hostIP: undefined, hostFamily: undefined },
      { protocol: 'udp', hostPort: 53, containerPort: 53, hostIP: '192.0.2.1', hostFamily: 4 },
      { protocol: 'tcp', hostPort: 81, containerPort: 81, hostIP: undefined, hostFamily: 6 },
    ],
  });
  assert.equal(
    ports.elements.filter((e) => e.map !== 'masq4' && e.map !== 'masq6').map((e) => `${e.map} ${e.keyId}`),
    [
      'ports {"concat":["ipv4","tcp",80]}',
      'ports {"concat":["ipv6","tcp",80]}',
      'hostports4 {"concat":["192.0.2.1","udp",53]}',
      'ports {"concat":["ipv6","tcp",81]}',
    ],
  );
  assert.is(ports.chains.find((c) => c.kind === 'dnat')!.rules.length, 4);

  const v4only = desiredState({
    ...base,
    ips: [ipPrefix('10.88.0.2/16')!],
    portMappings: [{ protocol: 'tcp', hostPort: 80, containerPort: 80, hostIP: 'fd00::1', hostFamily: 6 }],
  });
  assert.equal(
    v4only.chains.map((c) => c.kind),
    ['post'],
    'a v6 host address for a v4-only container publishes nothing (as the reference)',
  );

  const spoof = desiredState({ ...base, spoof: { hostVeth: 'veth1', mac: '02:00:00:00:00:01' } });
  const sc = spoof.chains.find((c) => c.kind === 'spoof')!;
  assert.is(sc.family, 'bridge');
  assert.ok(spoof.elements.some((e) => e.map === 'spoof' && e.key === 'veth1' && e.chain === sc.name));
  assert.ok(
    sc.rules.every((r) => r.some((x) => 'drop' in x)),
    'every spoof rule drops',
  );
});

test('skeleton: both tables, every map, base chains flushed before their rules', () => {
  const s = skeleton();
  const json = JSON.stringify(s);
  for (const m of [
    'masq4',
    'masq6',
    'ports',
    'hostports4',
    'hostports6',
    'isolation_from',
    'isolation_to',
    'spoof',
    'icc',
    'icc_ports',
    'allow4',
    'allow6',
    'nd6',
    'peers4',
  ])
    assert.ok(json.includes(`"name":"${m}"`), m);
  const flushes = s.filter((c) => 'flush' in c).length;
  assert.is(flushes, 7);
});

test('nft error texts map to errno names', () => {
  assert.is(nftErrorCode('internal:0:0-0: Error: Could not process rule: File exists'), 'EEXIST');
  assert.is(nftErrorCode('Error: Could not process rule: Device or resource busy'), 'EBUSY');
  assert.is(nftErrorCode('Error: No such file or directory\nlist table inet x'), 'ENOENT');
  assert.is(nftErrorCode('Error: syntax error'), 'ERR_NFT');
});

test('invalid specs are refused before nftables is touched (no privilege needed)', async () => {
  const ok = { containerId: 'c', ifname: 'eth0', network: 'n', bridge: 'br0', ips: ['10.0.0.2/24'] };
  for (const bad of [
    { ips: ['nope'] },
    { bridge: 'has space' },
    { portMappings: [{ hostPort: 1.5, containerPort: 80 }] },
    { spoofCheck: true, mac: '02:00:00:00:00:01' },
    { network: '' },
  ]) {
    await assertRejects(
      () => addContainerRules({ ...ok, ...bad } as never),
      { instance: FirewallError, code: /^ERR_INVALID_(ADDRESS|NAME|MAC|ARG_VALUE)$/ },
      JSON.stringify(bad),
    );
  }
});

test.run();
