/**
 * lib/firewall bookkeeping: DEL removes exactly one attachment (with nothing but its ID, interface and
 * network), twice is fine, GC keeps exactly the valid ones, a repeated ADD never duplicates, a changed ADD
 * replaces, ports cannot be stolen, addresses can be taken over, CHECK reports drift, concurrent plugins
 * leave exact state, a Host namespace can be targeted, and both backends behave the same.
 * The oracle is `nft -j list` (fixtures/bridge-lab.ts nftSummary) and packets.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertRejects } from '../fixtures/assert.js';
import { fileURLToPath } from 'node:url';
import { createHost, destroyAll, run, sandboxed, startEchoServer, tcpSend } from '../../netns-harness/index.js';
import {
  addContainerRules,
  attachmentTag,
  checkContainerRules,
  deleteFirewall,
  FirewallError,
  gcFirewall,
  listContainerRules,
  removeContainerRules,
  type ContainerFirewall,
  type NftBackendName,
} from '../../lib/firewall/index.js';
import { FIREWALL_PARALLEL } from '../fixtures/budget.js';
import { attachToBr0, enableForwarding, makeBridge, makeOutside, nftSkeleton, nftSummary, nftTable, OUTSIDE, type Attached } from '../fixtures/bridge-lab.js';

await sandboxed();

enableForwarding();
await makeBridge('br0', ['10.88.0.1/16', 'fd88::1/64']);
const outside = await makeOutside();
const lab = await createHost('lab');
const a = await attachToBr0(lab, 'a', 2);
const b = await attachToBr0(lab, 'b', 3);
const FIREWALL_OP = fileURLToPath(new URL('../fixtures/firewall-op.js', import.meta.url));
/** plugin processes racing on one ruleset; in one process the library takes more, cheaply */
const N = FIREWALL_PARALLEL;
const N_INPROC = Math.min(250, Math.max(50, N * 2));

function spec(c: Attached, id: string, extra: Partial<ContainerFirewall> = {}): ContainerFirewall {
  return {
    containerId: id,
    ifname: c.ifname,
    network: 'lifenet',
    bridge: 'br0',
    ips: c.ips,
    hostVeth: c.hostVeth,
    mac: c.mac,
    masquerade: true,
    spoofCheck: true,
    ...extra,
  };
}
const ref = (id: string, network = 'lifenet', ifname = 'eth0') => ({ containerId: id, ifname, network });

/** What nft lists about one attachment: its chains, its map entries, its rules. */
async function stateOf(id: string, network = 'lifenet', ifname = 'eth0') {
  const tag = attachmentTag(network, ifname, id);
  const s = await nftSummary();
  const inet = JSON.parse((await run(['nft', '-j', 'list', 'table', 'inet', 'netplumb'], { check: false })).stdout || '{"nftables":[]}').nftables as any[];
  const bridge = JSON.parse((await run(['nft', '-j', 'list', 'table', 'bridge', 'netplumb'], { check: false })).stdout || '{"nftables":[]}').nftables as any[];
  const rules = [...inet, ...bridge].filter((o) => o.rule?.chain.includes(tag)).length;
  return { chains: s.chains.filter((c) => c.includes(tag)), elements: s.elements.filter((e) => e.includes(tag)), rules };
}

async function everyAttachmentState() {
  const s = await nftSummary();
  return { chains: s.chains.filter((c) => / c-/.test(c)), elements: s.elements.filter((e) => / c-/.test(e)) };
}

test.before.each(async () => {
  await deleteFirewall();
});

test('DEL removes exactly one container: its port and masquerade go, the other container keeps working', async () => {
  await addContainerRules(spec(a, 'ctr-a', { portMappings: [{ hostPort: 8080, containerPort: 80 }] }));
  await addContainerRules(spec(b, 'ctr-b', { portMappings: [{ hostPort: 8081, containerPort: 80 }] }));
  const wa = await startEchoServer(a.container, 80, '::', { whoami: true });
  const wb = await startEchoServer(b.container, 80, '::', { whoami: true });
  const out = await startEchoServer(outside, 7001, '::', { whoami: true });
  try {
    assert.is((await tcpSend(outside, OUTSIDE.hostV4, 8080, 'x')).reply, OUTSIDE.v4);
    assert.is((await tcpSend(outside, OUTSIDE.hostV4, 8081, 'x')).reply, OUTSIDE.v4);
    const before = await stateOf('ctr-b');

    // DEL as after the namespace is gone: no netns, no address, no port list — only the IDs.
    assert.ok(await removeContainerRules(ref('ctr-a')));
    assert.equal(await stateOf('ctr-a'), { chains: [], elements: [], rules: 0 }, 'nothing of a is left');
    assert.equal(await stateOf('ctr-b'), before, "b's state is untouched");
    assert.not.ok((await tcpSend(outside, OUTSIDE.hostV4, 8080, 'x', 1000)).reply, "a's port is gone");
    assert.not.ok((await tcpSend(a.container, OUTSIDE.v4, 7001, 'x', 1000)).reply, "a's masquerade is gone");
    assert.is((await tcpSend(outside, OUTSIDE.hostV4, 8081, 'x')).reply, OUTSIDE.v4, "b's port still works");
    assert.is((await tcpSend(b.container, OUTSIDE.v4, 7001, 'x')).reply, OUTSIDE.hostV4, "b's masquerade still works");

    assert.is(await removeContainerRules(ref('ctr-a')), false, 'DEL twice: nothing to do, no error');
    assert.is(await removeContainerRules(ref('never-added')), false, 'DEL of an unknown container');
    assert.is(await removeContainerRules(ref('ctr-b', 'othernet')), false, 'same ID on another network is another attachment');
    assert.equal(await stateOf('ctr-b'), before);
  } finally {
    await Promise.all([wa.stop(), wb.stop(), out.stop()]);
  }
});

test('DEL before any table exists is fine', async () => {
  assert.is(await removeContainerRules(ref('ctr-a')), false);
  assert.equal(await gcFirewall('lifenet', []), []);
});

test('repeated ADD makes no duplicates; a changed ADD replaces the old rules and keys', async () => {
  const s1 = spec(a, 'ctr-a', {
    portMappings: [
      { hostPort: 8080, containerPort: 80 },
      { hostPort: 5353, containerPort: 53, protocol: 'udp' },
    ],
  });
  await addContainerRules(s1);
  const once = await stateOf('ctr-a');
  const total = (await nftSummary()).rules;
  await addContainerRules(s1);
  await addContainerRules(s1);
  assert.equal(await stateOf('ctr-a'), once, 'three ADDs = one ADD');
  assert.is((await nftSummary()).rules, total, 'and no base rule was duplicated either');
  assert.equal(await checkContainerRules(s1), []);

  const s2 = spec(a, 'ctr-a', { masquerade: false, portMappings: [{ hostPort: 9090, containerPort: 80 }] });
  await addContainerRules(s2);
  const now = await stateOf('ctr-a');
  assert.ok(
    now.elements.some((e) => e.includes('9090')),
    'new port',
  );
  assert.not.ok(
    now.elements.some((e) => e.includes('8080') || e.includes('5353')),
    `old ports gone: ${now.elements.join('\n')}`,
  );
  assert.equal(await checkContainerRules(s2), []);
  assert.ok((await checkContainerRules(s1)).length > 0, 'the old configuration no longer checks out');
  const srv = await startEchoServer(a.container, 80, '::', { whoami: true });
  try {
    assert.is((await tcpSend(outside, OUTSIDE.hostV4, 9090, 'x')).reply, OUTSIDE.v4);
    assert.not.ok((await tcpSend(outside, OUTSIDE.hostV4, 8080, 'x', 1000)).reply);
  } finally {
    await srv.stop();
  }
});

test('a host port published by one container cannot be taken by another (ERR_HOST_PORT_IN_USE, nothing changed)', async () => {
  await addContainerRules(spec(a, 'ctr-a', { portMappings: [{ hostPort: 8080, containerPort: 80 }] }));
  const before = await nftSummary();
  await assertRejects(
    () => addContainerRules(spec(b, 'ctr-b', { portMappings: [{ hostPort: 8080, containerPort: 80 }] })),
    { instance: FirewallError, code: 'ERR_HOST_PORT_IN_USE', message: /tcp\/8080.*ctr-a/ },
    'should have thrown',
  );
  assert.equal(await nftSummary(), before, 'the failed ADD left nothing');
  // Another protocol or another address is another port.
  await addContainerRules(
    spec(b, 'ctr-b', {
      portMappings: [
        { hostPort: 8080, containerPort: 80, protocol: 'udp' },
        { hostPort: 8080, containerPort: 80, hostIP: '127.0.0.1' },
      ],
    }),
  );
});

test('an address taken over by a new container: ADD succeeds, and DEL of the old one leaves it alone', async () => {
  await addContainerRules(spec(a, 'old', { spoofCheck: false }));
  await addContainerRules(spec(a, 'new', { spoofCheck: false }));
  const s = await nftSummary();
  const owner = (addr: string) => s.elements.find((e) => e.startsWith(`masq4 "${addr}"`));
  assert.match(owner('10.88.0.2')!, attachmentTag('lifenet', 'eth0', 'new'));
  assert.ok(await removeContainerRules(ref('old')));
  assert.equal(await checkContainerRules(spec(a, 'new', { spoofCheck: false })), []);
  const out = await startEchoServer(outside, 7001, '::', { whoami: true });
  try {
    assert.is((await tcpSend(a.container, OUTSIDE.v4, 7001, 'x')).reply, OUTSIDE.hostV4, 'masquerade of the new owner works');
  } finally {
    await out.stop();
  }
});

test('CHECK reports drift: a missing map entry, a flushed chain, a missing bridge', async () => {
  const s = spec(a, 'ctr-a', { portMappings: [{ hostPort: 8080, containerPort: 80 }] });
  await addContainerRules(s);
  assert.equal(await checkContainerRules(s), []);
  await run(['nft', 'delete', 'element', 'inet', 'netplumb', 'ports', '{ ipv4 . tcp . 8080 }']);
  const tag = attachmentTag('lifenet', 'eth0', 'ctr-a');
  await run(['nft', 'flush', 'chain', 'bridge', 'netplumb', `c-${tag}-spoof`]);
  await run(['nft', 'delete', 'element', 'inet', 'netplumb', 'bridges', '{ "br0" }']);
  const problems = await checkContainerRules(s);
  assert.ok(
    problems.some((p) => /tcp\/8080.*missing/.test(p)),
    problems.join('\n'),
  );
  assert.ok(
    problems.some((p) => /spoof.*0 rules/.test(p)),
    problems.join('\n'),
  );
  assert.ok(
    problems.some((p) => /bridge br0 is not registered/.test(p)),
    problems.join('\n'),
  );
  assert.is(problems.length, 3, problems.join('\n'));
  await addContainerRules(s);
  assert.equal(await checkContainerRules(s), [], 'ADD repairs');
  assert.ok((await checkContainerRules({ ...s, containerId: 'ctr-x' })).length > 0, 'CHECK of an attachment never added');
});

test("an ADD after anyone else's change to the ruleset writes the skeleton and the bridge's registration again", async () => {
  await addContainerRules(spec(a, 'ctr-a'));
  const whole = await nftSkeleton();
  // Only this process has committed since: an ADD and a DEL leave the same picture.
  await addContainerRules(spec(b, 'ctr-b'));
  assert.equal(await nftSkeleton(), whole, 'after an ADD that followed our own commit');
  assert.ok(await removeContainerRules(ref('ctr-b')));
  assert.equal(await nftSkeleton(), whole, 'after a DEL');
  const isolation = (await nftTable('inet')).find((o) => /^b-.*-from$/.test(o.chain?.name ?? ''))?.chain.name;
  assert.ok(isolation, 'the bridge has its isolation chain');
  // Changes of someone else's that an ADD leaving out the skeleton would not undo, then an ADD (some after a DEL).
  const changes: [string[], 'add' | 'del-add'][] = [
    [['flush', 'chain', 'inet', 'netplumb', 'postrouting'], 'add'],
    [['delete', 'element', 'inet', 'netplumb', 'bridges', '{ br0 }'], 'del-add'],
    [['flush', 'chain', 'inet', 'netplumb', isolation], 'add'],
    [['flush', 'chain', 'bridge', 'netplumb', 'prerouting'], 'del-add'],
    [['delete', 'table', 'bridge', 'netplumb'], 'add'],
    [['flush', 'ruleset'], 'add'],
  ];
  for (const [argv, how] of changes) {
    await run(['nft', ...argv]);
    assert.not.equal(await nftSkeleton(), whole, `nft ${argv.join(' ')} changed it`);
    if (how === 'del-add') await removeContainerRules(ref('ctr-b'));
    await addContainerRules(spec(b, 'ctr-b'));
    assert.equal(await nftSkeleton(), whole, `an ADD after nft ${argv.join(' ')} (${how})`);
    assert.is((await stateOf('ctr-b')).chains.length, 2, "the ADD's own chains");
    assert.ok(await removeContainerRules(ref('ctr-b')));
  }
});

test('GC keeps exactly the valid attachments of its network, and no other network', async () => {
  for (const id of ['g1', 'g2', 'g3']) await addContainerRules(spec(a, id, { spoofCheck: false, ips: [`10.88.1.${id.slice(1)}/16`] }));
  await addContainerRules({ ...spec(b, 'g1', { spoofCheck: false }), network: 'othernet', bridge: 'br0' });
  await addContainerRules(spec(b, 'g4', { ifname: 'eth1', spoofCheck: false, ips: ['10.88.1.4/16'] }));
  const removed = await gcFirewall('lifenet', [
    { containerId: 'g1', ifname: 'eth0' },
    { containerId: 'g4', ifname: 'eth1' },
  ]);
  assert.equal(removed.map((r) => r.containerId).sort(), ['g2', 'g3']);
  for (const id of ['g2', 'g3']) assert.equal((await stateOf(id)).chains, [], `${id} collected`);
  assert.ok((await stateOf('g1')).chains.length > 0, 'g1 valid');
  assert.ok((await stateOf('g4', 'lifenet', 'eth1')).chains.length > 0, 'g4/eth1 valid');
  assert.ok((await stateOf('g1', 'othernet')).chains.length > 0, 'othernet untouched');
  assert.equal(
    await gcFirewall('lifenet', [
      { containerId: 'g1', ifname: 'eth0' },
      { containerId: 'g4', ifname: 'eth1' },
    ]),
    [],
    'GC again: nothing',
  );
  const listed = await listContainerRules();
  assert.equal(listed.map((l) => `${l.network}/${l.containerId}/${l.ifname}`).sort(), ['lifenet/g1/eth0', 'lifenet/g4/eth1', 'othernet/g1/eth0']);
});

for (const backend of ['libnftables', 'exec'] as NftBackendName[]) {
  test(`${N} plugins in parallel (${backend}): ${N} ADDs, then ${N} DELs, leave exactly empty per-container state`, async () => {
    const specs = Array.from({ length: N }, (_, i) =>
      spec(a, `par-${i}`, {
        ips: [`10.88.2.${i + 1}/16`, `fd88::2:${i + 1}/64`],
        hostVeth: `vethpar${i}`,
        mac: `02:00:00:88:02:${(i + 1).toString(16).padStart(2, '0')}`,
        portMappings: [{ hostPort: 20000 + i, containerPort: 80 }],
      }),
    );
    const runOp = async (op: string, s: object) => {
      const r = await run([process.execPath, FIREWALL_OP, JSON.stringify({ op, spec: s, backend })], { check: false, timeoutMs: 120_000 });
      return r.exitCode === 0 ? 'ok' : r.stdout.trim() || r.stderr.trim();
    };
    const adds = await Promise.all(specs.map((s) => runOp('add', s)));
    assert.equal(
      adds.filter((r) => r !== 'ok'),
      [],
      'every ADD succeeded',
    );
    const after = await everyAttachmentState();
    assert.is(after.chains.length, N * 3, 'post, dnat and spoof chains for each');
    assert.is(after.elements.length, N * 5, 'two addresses, two port keys (v4, v6) and one veth for each');
    for (const s of specs.slice(0, 5)) assert.equal(await checkContainerRules(s), [], `${s.containerId} checks out`);

    const dels = await Promise.all(specs.map((s) => runOp('del', ref(s.containerId))));
    assert.equal(
      dels.filter((r) => r !== 'ok'),
      [],
      'every DEL succeeded',
    );
    assert.equal(await everyAttachmentState(), { chains: [], elements: [] }, 'empty per-container state');
  });
}

test(`${N} DELs racing 5 GCs of the same network (separate processes) converge to empty state`, async () => {
  const specs = Array.from({ length: N }, (_, i) =>
    spec(a, `race-${i}`, { ips: [`10.88.4.${i + 1}/16`], hostVeth: `vethrace${i}`, portMappings: [{ hostPort: 21000 + i, containerPort: 80 }] }),
  );
  await Promise.all(specs.map((s) => addContainerRules(s)));
  const op = async (arg: object) => (await run([process.execPath, FIREWALL_OP, JSON.stringify(arg)], { check: false, timeoutMs: 120_000 })).exitCode;
  const codes = await Promise.all([
    ...specs.map((s) => op({ op: 'del', spec: ref(s.containerId) })),
    ...Array.from({ length: 5 }, () => op({ op: 'gc', spec: { network: 'lifenet', valid: [] } })),
  ]);
  assert.equal(
    codes.filter((c) => c !== 0),
    [],
    'every DEL and GC succeeded',
  );
  assert.equal(await everyAttachmentState(), { chains: [], elements: [] });
});

test(`${N_INPROC} ADDs and DELs in parallel within one process (an orchestrator using the library directly)`, async () => {
  const specs = Array.from({ length: N_INPROC }, (_, i) => spec(a, `inproc-${i}`, { ips: [`10.88.3.${i + 1}/16`], hostVeth: `vethin${i}`, spoofCheck: true }));
  await Promise.all(specs.map((s) => addContainerRules(s)));
  assert.is((await everyAttachmentState()).chains.length, N_INPROC * 2);
  await Promise.all([...specs.map((s) => removeContainerRules(ref(s.containerId))), ...specs.map((s) => removeContainerRules(ref(s.containerId)))]);
  assert.equal(await everyAttachmentState(), { chains: [], elements: [] });
});

for (const backend of ['libnftables', 'exec'] as NftBackendName[]) {
  test(`another namespace can be targeted (${backend}): rules land there and only there`, async () => {
    const host = await createHost(`fwhost-${backend}`);
    try {
      await host.exec(['ip', 'link', 'add', 'br9', 'type', 'bridge']);
      const s = {
        containerId: 'ns-ctr',
        ifname: 'eth0',
        network: 'nsnet',
        bridge: 'br9',
        ips: ['10.99.0.2/24'],
        masquerade: true,
        portMappings: [{ hostPort: 8080, containerPort: 80 }],
      };
      await addContainerRules(s, { netns: host.netnsPath, backend });
      assert.is(await host.sysctl('net.ipv4.conf.br9.route_localnet'), '1', 'sysctl written in that namespace');
      const there = await nftSummary(host.netnsPath);
      assert.ok(
        there.chains.some((c) => c.includes(attachmentTag('nsnet', 'eth0', 'ns-ctr'))),
        there.chains.join(','),
      );
      assert.equal((await everyAttachmentState()).chains, [], 'nothing here');
      assert.equal(await checkContainerRules(s, { netns: host.netnsPath, backend }), []);
      assert.equal(
        (await listContainerRules({ netns: host.netnsPath, backend })).map((x) => x.containerId),
        ['ns-ctr'],
      );
      assert.ok(await removeContainerRules(ref('ns-ctr', 'nsnet'), { netns: host.netnsPath, backend }));
      assert.equal(
        (await nftSummary(host.netnsPath)).chains.filter((c) => / c-/.test(c)),
        [],
      );
    } finally {
      await host.destroy();
    }
  });
}

test('invalid input is refused with an ERR_INVALID_* code before anything is touched', async () => {
  const bad: Partial<ContainerFirewall>[] = [
    { ips: ['10.88.0.300/16'] },
    { ips: ['10.88.0.2/33'] },
    { portMappings: [{ hostPort: 0, containerPort: 80 }] },
    { portMappings: [{ hostPort: 65536, containerPort: 80 }] },
    { portMappings: [{ hostPort: 80, containerPort: 80, protocol: 'icmp' as 'tcp' }] },
    { portMappings: [{ hostPort: 80, containerPort: 80, hostIP: 'localhost' }] },
    {
      portMappings: [
        { hostPort: 80, containerPort: 80 },
        { hostPort: 80, containerPort: 81 },
      ],
    },
    { bridge: 'a/b' },
    { bridge: 'a-very-long-bridge-name' },
    { hostVeth: '' },
    { mac: '03:00:00:00:00:01' },
    { mac: 'zz' },
    { containerId: '' },
  ];
  for (const extra of bad) {
    await assertRejects(() => addContainerRules(spec(a, 'bad', extra)), { code: /^ERR_INVALID_(ADDRESS|NAME|MAC|ARG_VALUE)$/ }, JSON.stringify(extra));
  }
  assert.equal((await nftSummary()).chains, [], 'no table was even created');
});

test.after(() => destroyAll());

test.run();
