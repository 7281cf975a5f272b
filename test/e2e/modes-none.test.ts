/**
 * netplumb-none (Docker's --net=none) executed as a runtime executes it, for every verb and every cniVersion,
 * against `ip -j` in the container's namespace and packets on its loopback; side by side with the reference
 * `loopback` plugin (same Result, same kernel state after ADD and after DEL); and bad input, each case with
 * its error code, exit 1 and nothing changed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { sandboxed, createHost, ping, startEchoServer, tcpSend, type Container, type Host, type CniCommand } from '../../netns-harness/index.js';
import { cniRuntime, ensurePluginBins } from '../fixtures/cni-runtime.js';
import { VERSIONS, addrView, assertVerbOfVersion, errorOf, modesState } from '../fixtures/modes.js';

await sandboxed();
ensurePluginBins();

const PLUGIN = 'netplumb-none';
let host: Host;
let seq = 0;
const conf = (cniVersion = '1.1.0', extra: Record<string, unknown> = {}) => ({ cniVersion, name: 'none', type: PLUGIN, ...extra });
const exec = (command: CniCommand, config: unknown, c: { netns?: string | undefined; id?: string; ifname?: string; args?: string } = {}) =>
  cniRuntime({ host }).exec(
    command,
    config,
    { containerId: c.id ?? 'ctr', netns: c.netns, ifname: c.ifname ?? 'lo', args: c.args },
    { plugin: (config as { type?: string }).type ?? PLUGIN },
  );

async function fresh(): Promise<Container> {
  return host.createContainer(`c${++seq}`);
}

async function lo(c: Container): Promise<any> {
  const [l] = await c.ip<any[]>('addr', 'show', 'dev', 'lo');
  return l;
}
const loAddrs = (l: any) => l.addr_info.map((a: any) => `${a.local}/${a.prefixlen}`);

test.before(async () => {
  host = await createHost('nonehost');
});
test.after(async () => {
  await host.destroy();
});

for (const v of VERSIONS) {
  test(`cniVersion ${v}: ADD gives lo only, up, 127.0.0.1/8 and ::1; CHECK, STATUS, GC, DEL (twice) as the spec says`, async () => {
    const c = await fresh();
    const id = `none-${v.replaceAll('.', '')}`;
    const before = await lo(c);
    assert.not.ok(before.flags.includes('UP'), 'a new namespace has lo down');
    assert.not.ok((await ping(c, '127.0.0.1', { timeoutSec: 1 })).ok, 'no loopback traffic before ADD');

    const add = await exec('ADD', conf(v), { netns: c.netnsPath, id });
    assert.is(add.exitCode, 0, add.stdout + add.stderr);
    assert.is(add.stderr, '');
    const legacy = v.startsWith('0.');
    assert.equal(add.json, {
      cniVersion: v,
      interfaces: [{ name: 'lo', mac: '00:00:00:00:00:00', sandbox: c.netnsPath }],
      ips: [
        { ...(legacy ? { version: '4' } : {}), interface: 0, address: '127.0.0.1/8' },
        { ...(legacy ? { version: '6' } : {}), interface: 0, address: '::1/128' },
      ],
      ...(legacy ? { dns: {} } : {}),
    });
    // the oracle: iproute2 in the container, and packets
    const links = await c.ip<any[]>('link', 'show');
    assert.equal(
      links.map((l) => l.ifname),
      ['lo'],
      'loopback only',
    );
    const l = await lo(c);
    assert.ok(l.flags.includes('UP'));
    assert.equal(loAddrs(l), ['127.0.0.1/8', '::1/128']);
    assert.ok((await ping(c, '127.0.0.1')).ok);
    assert.ok((await ping(c, '::1')).ok);
    const srv = await startEchoServer(c, 8080, '127.0.0.1');
    const echo = await tcpSend(c, '127.0.0.1', 8080, 'hello lo');
    await srv.stop();
    assert.ok(echo.ok, echo.error);

    const check = await exec('CHECK', { ...conf(v), prevResult: add.json }, { netns: c.netnsPath, id });
    assertVerbOfVersion('CHECK', v, check);
    for (const cmd of ['STATUS', 'GC'] as const) {
      const r = await cniRuntime({ host }).exec(cmd, { ...conf(v), 'cni.dev/valid-attachments': [{ containerID: id, ifname: 'lo' }] }, {}, { plugin: PLUGIN });
      assertVerbOfVersion(cmd, v, r);
    }
    assert.ok(modesState().records[`attachments/${id}/none:none:lo`], 'the attachment is recorded (GC kept it)');

    const del = await exec('DEL', { ...conf(v), prevResult: add.json }, { netns: c.netnsPath, id });
    assert.equal([del.exitCode, del.stdout], [0, ''], del.stdout);
    assert.not.ok((await lo(c)).flags.includes('UP'), 'DEL brings lo down, as the reference does');
    assert.is(modesState().records[`attachments/${id}/none:none:lo`], undefined, 'and forgets the attachment');
    const again = await exec('DEL', conf(v), { netns: c.netnsPath, id });
    assert.equal([again.exitCode, again.stdout], [0, ''], 'DEL is idempotent');
    await c.destroy();
  });
}

test('differential: the reference loopback and netplumb-none give the same Result and the same kernel state', async () => {
  // the reference (Debian 1.1.1) speaks up to 1.0.0
  for (const v of ['0.3.0', '0.3.1', '0.4.0', '1.0.0']) {
    const ref = await fresh();
    const ours = await fresh();
    const r1 = await exec('ADD', conf(v, { type: 'loopback' }), { netns: ref.netnsPath, id: `ref${v}` });
    const r2 = await exec('ADD', conf(v), { netns: ours.netnsPath, id: `ours${v}` });
    assert.equal([r1.exitCode, r2.exitCode], [0, 0], r1.stdout + r2.stdout);
    // The same Result but for the sandbox path, the reference's empty `dns` (which 1.x leaves out) and the
    // ips' `version`: the 0.3/0.4 spec asks for it, and the reference (1.1.1) leaves it out because it labels a
    // 1.0-shaped Result with the old version instead of converting it.
    if (v.startsWith('0.'))
      assert.equal(
        r2.json.ips.map((i: any) => i.version),
        ['4', '6'],
        'netplumb gives ips their version',
      );
    const norm = (j: any, sandbox: string) => {
      const { dns, ...rest } = j;
      if (dns !== undefined) assert.equal(dns, {});
      rest.ips = rest.ips.map(({ version: _, ...ip }: any) => ip);
      return JSON.parse(JSON.stringify(rest).replaceAll(sandbox, 'SANDBOX'));
    };
    assert.equal(norm(r2.json, ours.netnsPath), norm(r1.json, ref.netnsPath), `Result ${v}`);
    assert.equal(await addrView(ours), await addrView(ref), `state after ADD (${v})`);
    if (v !== '0.3.0' && v !== '0.3.1') {
      const c1 = await exec('CHECK', { ...conf(v, { type: 'loopback' }), prevResult: r1.json }, { netns: ref.netnsPath, id: `ref${v}` });
      const c2 = await exec('CHECK', { ...conf(v), prevResult: r2.json }, { netns: ours.netnsPath, id: `ours${v}` });
      assert.equal([c1.exitCode, c2.exitCode], [0, 0]);
      // drift: both see lo down (the reference says so with 999, netplumb with its CHECK code 120)
      await ref.exec(['ip', 'link', 'set', 'lo', 'down']);
      await ours.exec(['ip', 'link', 'set', 'lo', 'down']);
      const d1 = await exec('CHECK', conf(v, { type: 'loopback' }), { netns: ref.netnsPath, id: `ref${v}` });
      const d2 = await exec('CHECK', conf(v), { netns: ours.netnsPath, id: `ours${v}` });
      assert.equal([d1.exitCode, errorOf(d2)?.code], [1, 120], d2.stdout);
      assert.match(d2.json.msg, /lo is down/);
      await ref.exec(['ip', 'link', 'set', 'lo', 'up']);
      await ours.exec(['ip', 'link', 'set', 'lo', 'up']);
    }
    const x1 = await exec('DEL', conf(v, { type: 'loopback' }), { netns: ref.netnsPath, id: `ref${v}` });
    const x2 = await exec('DEL', conf(v), { netns: ours.netnsPath, id: `ours${v}` });
    assert.equal([x1.exitCode, x2.exitCode], [0, 0]);
    assert.equal(await addrView(ours), await addrView(ref), `state after DEL (${v})`);
    await Promise.all([ref.destroy(), ours.destroy()]);
  }
});

test('CHECK names the drift; ADD again repairs it', async () => {
  const c = await fresh();
  assert.is((await exec('ADD', conf(), { netns: c.netnsPath, id: 'drift' })).exitCode, 0);
  await c.exec(['ip', 'addr', 'del', '127.0.0.1/8', 'dev', 'lo']);
  const d = await exec('CHECK', conf(), { netns: c.netnsPath, id: 'drift' });
  assert.is(errorOf(d)?.code, 120, d.stdout);
  assert.match(d.json.msg, /lo lacks 127\.0\.0\.1\/8/);
  assert.not.ok((await ping(c, '127.0.0.1', { timeoutSec: 1 })).ok, 'the drift is real');
  const again = await exec('ADD', conf(), { netns: c.netnsPath, id: 'drift' });
  assert.is(again.exitCode, 0, again.stdout);
  assert.equal(loAddrs(await lo(c)).sort(), ['127.0.0.1/8', '::1/128']);
  assert.ok((await ping(c, '127.0.0.1')).ok);
  assert.is((await exec('CHECK', conf(), { netns: c.netnsPath, id: 'drift' })).exitCode, 0);
  // a prevResult address that is gone from lo is drift too
  await c.exec(['ip', 'addr', 'add', '127.0.0.2/8', 'dev', 'lo']);
  const withExtra = (await exec('ADD', conf(), { netns: c.netnsPath, id: 'drift' })).json;
  assert.ok(
    withExtra.ips.some((i: any) => i.address === '127.0.0.2/8'),
    'every lo address is reported',
  );
  await c.exec(['ip', 'addr', 'del', '127.0.0.2/8', 'dev', 'lo']);
  const gone = await exec('CHECK', { ...conf(), prevResult: withExtra }, { netns: c.netnsPath, id: 'drift' });
  assert.is(errorOf(gone)?.code, 120);
  assert.match(gone.json.msg, /lo lacks 127\.0\.0\.2\/8/);
  await exec('DEL', conf(), { netns: c.netnsPath, id: 'drift' });
  await c.destroy();
});

test('IPv6 disabled in the container: 127.0.0.1/8 only, and CHECK does not ask for ::1', async () => {
  const c = await fresh();
  await c.exec(['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.lo.disable_ipv6=1']);
  const add = await exec('ADD', conf(), { netns: c.netnsPath, id: 'v4only' });
  assert.is(add.exitCode, 0, add.stdout);
  assert.equal(add.json.ips, [{ interface: 0, address: '127.0.0.1/8' }]);
  assert.equal(loAddrs(await lo(c)), ['127.0.0.1/8']);
  assert.is((await exec('CHECK', conf(), { netns: c.netnsPath, id: 'v4only' })).exitCode, 0);
  await exec('DEL', conf(), { netns: c.netnsPath, id: 'v4only' });
  await c.destroy();
});

test('after another plugin (prevResult), lo is appended to its Result', async () => {
  const c = await fresh();
  const prevResult = {
    cniVersion: '1.0.0',
    interfaces: [{ name: 'eth0', sandbox: c.netnsPath }],
    ips: [{ address: '10.1.0.2/24', interface: 0 }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }],
  };
  const add = await exec('ADD', { ...conf('1.0.0'), prevResult }, { netns: c.netnsPath, id: 'chained' });
  assert.is(add.exitCode, 0, add.stdout);
  assert.equal(add.json, {
    cniVersion: '1.0.0',
    interfaces: [
      { name: 'eth0', sandbox: c.netnsPath },
      { name: 'lo', mac: '00:00:00:00:00:00', sandbox: c.netnsPath },
    ],
    ips: [
      { address: '10.1.0.2/24', interface: 0 },
      { interface: 1, address: '127.0.0.1/8' },
      { interface: 1, address: '::1/128' },
    ],
    routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }],
  });
  await exec('DEL', conf('1.0.0'), { netns: c.netnsPath, id: 'chained' });
  await c.destroy();
});

test('DEL succeeds with CNI_NETNS empty or vanished, and forgets the attachment', async () => {
  const a = await fresh();
  const b = await fresh();
  assert.is((await exec('ADD', conf(), { netns: a.netnsPath, id: 'gone-a' })).exitCode, 0);
  assert.is((await exec('ADD', conf(), { netns: b.netnsPath, id: 'gone-b' })).exitCode, 0);
  const pathA = a.netnsPath;
  await a.destroy();
  const d1 = await exec('DEL', conf(), { netns: pathA, id: 'gone-a' });
  assert.equal([d1.exitCode, d1.stdout], [0, ''], d1.stdout);
  // no CNI_NETNS: the record names the namespace, so lo still goes down
  const d2 = await exec('DEL', conf(), { netns: '', id: 'gone-b' });
  assert.equal([d2.exitCode, d2.stdout], [0, ''], d2.stdout);
  assert.not.ok((await lo(b)).flags.includes('UP'));
  const recs = Object.keys(modesState().records).filter((k) => /gone-/.test(k));
  assert.equal(recs, []);
  await b.destroy();
});

test('GC forgets the attachments of this network the runtime no longer lists, and no others', async () => {
  const cs = await Promise.all([fresh(), fresh(), fresh()]);
  for (const [i, c] of cs.entries()) assert.is((await exec('ADD', conf(), { netns: c.netnsPath, id: `gc${i}` })).exitCode, 0);
  assert.is((await exec('ADD', conf('1.1.0', { name: 'othernet' }), { netns: cs[0]!.netnsPath, id: 'gc0' })).exitCode, 0);
  const gc = await cniRuntime({ host }).exec('GC', { ...conf(), 'cni.dev/valid-attachments': [{ containerID: 'gc1', ifname: 'lo' }] }, {}, { plugin: PLUGIN });
  assert.equal([gc.exitCode, gc.stdout], [0, ''], gc.stdout);
  const keys = Object.keys(modesState().records)
    .filter((k) => /\/gc\d\/./.test(k))
    .sort();
  assert.equal(keys, ['attachments/gc0/none:othernet:lo', 'attachments/gc1/none:none:lo']);
  // GC changes no namespace
  for (const c of cs) assert.ok((await lo(c)).flags.includes('UP'));
  await exec('DEL', conf('1.1.0', { name: 'othernet' }), { netns: cs[0]!.netnsPath, id: 'gc0' });
  await exec('DEL', conf(), { netns: cs[1]!.netnsPath, id: 'gc1' });
  await Promise.all(cs.map((c) => c.destroy()));
});

test('bad input gets the right code, exit 1, and changes nothing', async () => {
  const c = await fresh();
  writeFileSync('/run/not-a-netns', 'x');
  const cases: Array<[string, string, unknown, Parameters<typeof exec>[2], number, RegExp]> = [
    ["the host's own namespace", 'ADD', conf(), { netns: host.netnsPath }, 8, /plugin's own network namespace/],
    ["CHECK in the host's namespace", 'CHECK', conf(), { netns: host.netnsPath }, 8, /plugin's own/],
    ['a namespace that does not exist', 'ADD', conf(), { netns: '/run/netns/nowhere' }, 3, /does not exist/],
    ['a file that is no namespace', 'ADD', conf(), { netns: '/run/not-a-netns' }, 4, /not a namespace file/],
    ['no CNI_NETNS', 'ADD', conf(), {}, 4, /CNI_NETNS/],
    ['container ID escaping', 'ADD', conf(), { netns: c.netnsPath, id: '../../etc' }, 4, /CNI_CONTAINERID/],
    ['cniVersion 0.2.0', 'ADD', conf('0.2.0'), { netns: c.netnsPath }, 1, /incompatible/],
    ['undecodable JSON', 'ADD', '{"cniVersion":', { netns: c.netnsPath }, 6, /error decoding/],
    ['no network name', 'ADD', conf('1.1.0', { name: '' }), { netns: c.netnsPath }, 7, /missing network name/],
    ['malformed CNI_ARGS', 'ADD', conf(), { netns: c.netnsPath, args: 'nonsense' }, 4, /CNI_ARGS/],
  ];
  for (const [what, command, config, inv, code, re] of cases) {
    const hostBefore = await addrView(host);
    const ctrBefore = await addrView(c);
    const state = modesState();
    const r = await exec(command as CniCommand, config, inv);
    const err = errorOf(r);
    assert.ok(err, `${what}: ${r.exitCode} ${r.stdout}`);
    assert.is(err!.code, code, `${what}: ${r.stdout}`);
    assert.match(err!.msg, re, what);
    assert.match(r.stderr, /netplumb-none/, `${what}: logged on stderr`);
    assert.equal(await addrView(host), hostBefore, `${what}: the host is unchanged`);
    assert.equal(await addrView(c), ctrBefore, `${what}: the container is unchanged`);
    assert.equal(modesState(), state, `${what}: no record, no mount`);
  }
  await c.destroy();
});

test('ADD is all or nothing: when the attachment cannot be recorded, lo is left as it was', async () => {
  const c = await fresh();
  const before = await addrView(c);
  // an unsafe state directory: a symbolic link where netplumb keeps its records
  mkdirSync('/run/netplumb/attachments', { recursive: true });
  renameSync('/run/netplumb/attachments', '/run/netplumb/attachments.real');
  mkdirSync('/run/elsewhere', { recursive: true });
  symlinkSync('/run/elsewhere', '/run/netplumb/attachments');
  try {
    const r = await exec('ADD', conf(), { netns: c.netnsPath, id: 'rollback' });
    assert.is(errorOf(r)?.code, 106, r.stdout);
    assert.match(r.json.msg, /symbolic link/);
    assert.equal(await addrView(c), before, 'lo is down again, without addresses');
    const st = await cniRuntime({ host }).exec('STATUS', conf(), {}, { plugin: PLUGIN });
    assert.is(errorOf(st)?.code, 50, `STATUS says records cannot be written: ${st.stdout}`);
  } finally {
    rmSync('/run/netplumb/attachments');
    renameSync('/run/netplumb/attachments.real', '/run/netplumb/attachments');
  }
  await c.destroy();
});

test.run();
