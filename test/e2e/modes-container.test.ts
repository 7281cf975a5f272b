/**
 * netplumb-container (Docker's --net=container:<id>) executed as a runtime executes it. The target "web" is
 * attached the way CNI runtimes commonly attach a container: a loopback network (netplumb-none) and a bridge
 * network (the reference bridge + host-local) giving it eth0. A joining container gets a namespace file from
 * the runtime (`ip netns add`, in /run/netns); after ADD that file is web's namespace: same eth0, same
 * addresses, and web's services on 127.0.0.1 answer a client started through it. DEL gives the runtime its
 * own namespace back and never touches web's interfaces. Every verb, every cniVersion, and bad input (missing,
 * hostile or stale targets, namespaces that cannot join) with its error code, exit 1 and nothing changed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import {
  sandboxed,
  createHost,
  CniRuntime,
  ipJson,
  ping,
  run,
  startEchoServer,
  tcpSend,
  type Container,
  type Host,
  type NetworkConfigList,
  type CniCommand,
} from '../../netns-harness/index.js';
import { cniRuntime, ensurePluginBins } from '../fixtures/cni-runtime.js';
import {
  VERSIONS,
  addrView,
  assertVerbOfVersion,
  errorOf,
  expectedDescription,
  modesState,
  mountsAt,
  nsId,
  removeNetns,
  runtimeNetns,
} from '../fixtures/modes.js';
import { assertRefused } from '../fixtures/assert.js';

await sandboxed();
ensurePluginBins();

const PLUGIN = 'netplumb-container';
let host: Host;
let web: Container;
let webIp: string;
let rt: CniRuntime;

const loList: NetworkConfigList = { cniVersion: '1.1.0', name: 'lo', plugins: [{ type: 'netplumb-none' }] };
const bridgeList: NetworkConfigList = {
  cniVersion: '1.0.0',
  name: 'refbr',
  plugins: [
    {
      type: 'bridge',
      bridge: 'cni-modes0',
      isGateway: true,
      ipam: { type: 'host-local', ranges: [[{ subnet: '10.77.0.0/24' }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: '/run/cni-modes/ipam' },
    },
  ],
};
const conf = (cniVersion = '1.1.0', extra: Record<string, unknown> = {}) => ({ cniVersion, name: 'joined', type: PLUGIN, container: 'web', ...extra });
const exec = (command: CniCommand, config: unknown, c: { netns?: string | undefined; id?: string; args?: string } = {}) =>
  rt.exec(
    command,
    config,
    { containerId: c.id ?? 'side', netns: c.netns, ifname: 'eth0', args: c.args },
    { plugin: (config as { type?: string }).type ?? PLUGIN },
  );

const linkNames = async (netns: string) => (await ipJson<any[]>(['link', 'show'], netns)).map((l) => l.ifname).sort();
test.before(async () => {
  host = await createHost('ctrhost');
  web = await host.createContainer('web');
  rt = cniRuntime({ host });
  await rt.add(loList, { containerId: 'web', netns: web.netnsPath, ifname: 'lo' });
  const res = await rt.add(bridgeList, { containerId: 'web', netns: web.netnsPath, ifname: 'eth0' });
  webIp = res.ips[0].address.split('/')[0];
});
test.after(async () => {
  await host.destroy();
});

for (const v of VERSIONS) {
  test(`cniVersion ${v}: ADD joins web's stack, CHECK, STATUS, GC; DEL gives the runtime its namespace back (twice)`, async () => {
    const netns = await runtimeNetns();
    const own = nsId(netns);
    const webBefore = await addrView(web);
    const id = `side${v.replaceAll('.', '')}`;

    const add = await exec('ADD', conf(v), { netns, id });
    assert.is(add.exitCode, 0, add.stdout + add.stderr);
    assert.is(add.stderr, '');
    const want = await expectedDescription(web.netnsPath, netns);
    const { cniVersion, ...got } = add.json;
    assert.is(cniVersion, v);
    if (v.startsWith('0.')) {
      assert.equal(got, {
        interfaces: want.interfaces.map(({ mtu: _, ...i }) => i),
        ips: want.ips.map((ip) => ({ version: '4', ...ip })),
        routes: want.routes,
        dns: {},
      });
    } else assert.equal(got, want);
    assert.equal(
      want.interfaces.map((i) => i.name),
      ['eth0'],
    );
    assert.equal(
      want.ips.map((i) => [i.address, i.gateway]),
      [[`${webIp}/24`, '10.77.0.1']],
    );

    // the oracles: the kernel's identity of the namespace, iproute2 through the file, the mount table, packets
    assert.is(nsId(netns), nsId(web.netnsPath), "CNI_NETNS is web's namespace now");
    assert.equal(await addrView(netns), await addrView(web), 'the same links and addresses, seen through CNI_NETNS');
    assert.is(mountsAt(netns).length, 2, "web's namespace is mounted on top of the runtime's");
    const srv = await startEchoServer(web, 7000, '127.0.0.1');
    const echo = await tcpSend({ netnsPath: netns }, '127.0.0.1', 7000, `hello from ${id}`);
    await srv.stop();
    assert.equal([echo.ok, echo.reply], [true, `hello from ${id}`], echo.error);
    const gw = await run(['ping', '-n', '-c', '1', '-W', '2', '10.77.0.1'], { netns, check: false });
    assert.is(gw.exitCode, 0, `web's gateway through CNI_NETNS: ${gw.stdout}`);
    assert.equal(await addrView(web), webBefore, 'web itself is unchanged');

    const check = await exec('CHECK', { ...conf(v), prevResult: add.json }, { netns, id });
    assertVerbOfVersion('CHECK', v, check);
    for (const cmd of ['STATUS', 'GC'] as const) {
      const r = await rt.exec(cmd, { ...conf(v), 'cni.dev/valid-attachments': [{ containerID: id, ifname: 'eth0' }] }, {}, { plugin: PLUGIN });
      assertVerbOfVersion(cmd, v, r);
    }
    assert.is(nsId(netns), nsId(web.netnsPath), 'GC kept the valid attachment joined');

    for (let i = 0; i < 2; i++) {
      const del = await exec('DEL', { ...conf(v), prevResult: add.json }, { netns, id });
      assert.equal([del.exitCode, del.stdout], [0, ''], del.stdout);
      assert.is(nsId(netns), own, "the runtime's own namespace is back");
      assert.is(mountsAt(netns).length, 1);
    }
    assert.equal(await linkNames(netns), ['lo']);
    assert.equal(await addrView(web), webBefore, 'DEL never touches the shared interfaces');
    assert.ok((await ping(host, webIp)).ok, 'web is still reachable');
    assert.is(modesState().records[`attachments/${id}/container:joined:eth0`], undefined, 'the attachment is forgotten');
    await removeNetns(netns);
  });
}

test('the target can come per invocation in CNI_ARGS (NETPLUMB_CONTAINER wins over "container")', async () => {
  const netns = await runtimeNetns();
  const r = await exec('ADD', conf('1.1.0', { container: 'not-this-one' }), {
    netns,
    id: 'byargs',
    args: 'IgnoreUnknown=1;K8S_POD_NAME=x;NETPLUMB_CONTAINER=web',
  });
  assert.is(r.exitCode, 0, r.stdout);
  assert.is(nsId(netns), nsId(web.netnsPath));
  assert.is(
    (await exec('CHECK', conf('1.1.0', { container: 'not-this-one' }), { netns, id: 'byargs', args: 'IgnoreUnknown=1;NETPLUMB_CONTAINER=web' })).exitCode,
    0,
  );
  assert.is((await exec('DEL', conf(), { netns, id: 'byargs' })).exitCode, 0);
  assert.is.not(nsId(netns), nsId(web.netnsPath));
  await removeNetns(netns);
});

test("CNI_NETNS that already is the target's namespace: verified, nothing mounted, nothing undone", async () => {
  const mounts = modesState().mounts;
  const webBefore = await addrView(web);
  const r = await exec('ADD', conf(), { netns: web.netnsPath, id: 'already' });
  assert.is(r.exitCode, 0, r.stdout);
  assert.equal(
    r.json.interfaces.map((i: any) => [i.name, i.sandbox]),
    [['eth0', web.netnsPath]],
  );
  assert.equal(modesState().mounts, mounts, 'no mount');
  assert.is((await exec('CHECK', conf(), { netns: web.netnsPath, id: 'already' })).exitCode, 0);
  assert.is((await exec('DEL', conf(), { netns: web.netnsPath, id: 'already' })).exitCode, 0);
  assert.equal(modesState().mounts, mounts);
  assert.equal(await addrView(web), webBefore);
});

test('DEL without CNI_NETNS, and DEL after the runtime removed the namespace file, undo the join', async () => {
  const a = await runtimeNetns();
  const ownA = nsId(a);
  assert.is((await exec('ADD', conf(), { netns: a, id: 'noenv' })).exitCode, 0);
  const d = await exec('DEL', conf(), { netns: '', id: 'noenv' });
  assert.equal([d.exitCode, d.stdout], [0, ''], d.stdout);
  assert.is(nsId(a), ownA, 'unmounted through the recorded path');
  await removeNetns(a);

  const b = await runtimeNetns();
  assert.is((await exec('ADD', conf(), { netns: b, id: 'vanished' })).exitCode, 0);
  // a runtime that deletes the file first: its unmount takes our (topmost) mount, the next one its own
  await run(['ip', 'netns', 'delete', b.split('/').pop()!], { check: false });
  await run(['ip', 'netns', 'delete', b.split('/').pop()!], { check: false });
  assert.not.ok(existsSync(b));
  const webBefore = await addrView(web);
  const gone = await exec('DEL', conf(), { netns: b, id: 'vanished' });
  assert.equal([gone.exitCode, gone.stdout], [0, ''], gone.stdout);
  assert.equal(await addrView(web), webBefore);
  assert.equal(
    Object.keys(modesState().records).filter((k) => /noenv|vanished/.test(k)),
    [],
  );
});

test('GC undoes the joins of this network the runtime no longer lists', async () => {
  const keep = await runtimeNetns();
  const drop = await runtimeNetns();
  const ownDrop = nsId(drop);
  assert.is((await exec('ADD', conf(), { netns: keep, id: 'keep' })).exitCode, 0);
  assert.is((await exec('ADD', conf(), { netns: drop, id: 'drop' })).exitCode, 0);
  const other = await rt.exec('GC', { ...conf('1.1.0', { name: 'another' }), 'cni.dev/valid-attachments': [] }, {}, { plugin: PLUGIN });
  assert.is(other.exitCode, 0);
  assert.is(nsId(drop), nsId(web.netnsPath), 'GC of another network touches nothing of this one');
  const gc = await rt.exec('GC', { ...conf(), 'cni.dev/valid-attachments': [{ containerID: 'keep', ifname: 'eth0' }] }, {}, { plugin: PLUGIN });
  assert.equal([gc.exitCode, gc.stdout], [0, ''], gc.stdout);
  assert.is(nsId(drop), ownDrop, 'the stale join is unmounted');
  assert.is(nsId(keep), nsId(web.netnsPath), 'the valid one stays');
  assert.is(modesState().records['attachments/drop/container:joined:eth0'], undefined);
  assert.ok(modesState().records['attachments/keep/container:joined:eth0']);
  // the web record (netplumb-none, network "lo") is another network's: untouched
  assert.ok(modesState().records['attachments/web/none:lo:lo']);
  assert.is((await exec('DEL', conf(), { netns: keep, id: 'keep' })).exitCode, 0);
  await removeNetns(keep);
  await removeNetns(drop);
});

test("a container can join one that joined: both end up in web's namespace", async () => {
  const first = await runtimeNetns();
  const second = await runtimeNetns();
  assert.is((await exec('ADD', conf(), { netns: first, id: 'first' })).exitCode, 0);
  const r = await exec('ADD', conf('1.1.0', { container: 'first' }), { netns: second, id: 'second' });
  assert.is(r.exitCode, 0, r.stdout);
  assert.is(nsId(second), nsId(web.netnsPath));
  assert.is((await exec('DEL', conf('1.1.0', { container: 'first' }), { netns: second, id: 'second' })).exitCode, 0);
  assert.is((await exec('DEL', conf(), { netns: first, id: 'first' })).exitCode, 0);
  await removeNetns(first);
  await removeNetns(second);
});

test("the joiner's own loopback attachment (netplumb-none through the joined file) does not take web's lo down at DEL", async () => {
  const netns = await runtimeNetns();
  assert.is((await exec('ADD', conf(), { netns, id: 'lojoin' })).exitCode, 0);
  // runtimes commonly run a loopback network for every container, through the same CNI_NETNS
  const lo = { cniVersion: '1.1.0', name: 'lo', type: 'netplumb-none' };
  assert.is((await rt.exec('ADD', lo, { containerId: 'lojoin', netns, ifname: 'lo' }, { plugin: 'netplumb-none' })).exitCode, 0);
  assert.is((await rt.exec('DEL', lo, { containerId: 'lojoin', netns, ifname: 'lo' }, { plugin: 'netplumb-none' })).exitCode, 0);
  const [webLo] = await web.ip<any[]>('link', 'show', 'dev', 'lo');
  assert.ok(webLo.flags.includes('UP'), "web's lo is shared, so it stays up");
  assert.is((await exec('DEL', conf(), { netns, id: 'lojoin' })).exitCode, 0);
  await removeNetns(netns);
});

test("CHECK reports a join that was undone behind netplumb's back", async () => {
  const netns = await runtimeNetns();
  assert.is((await exec('ADD', conf(), { netns, id: 'drift' })).exitCode, 0);
  await run(['umount', netns]);
  const c = await exec('CHECK', conf(), { netns, id: 'drift' });
  assert.is(errorOf(c)?.code, 120, c.stdout);
  assert.match(c.json.msg, /is net:\[\d+\], not container web's net:\[\d+\]/);
  const none = await exec('CHECK', conf(), { netns, id: 'never-added' });
  assert.is(errorOf(none)?.code, 120);
  assert.match(none.json.msg, /no attachment is recorded/);
  // DEL finds no mount of ours on top, so it unmounts nothing (the runtime's own mount stays)
  assert.is((await exec('DEL', conf(), { netns, id: 'drift' })).exitCode, 0);
  assert.is(mountsAt(netns).length, 1);
  await removeNetns(netns);
});

test('bad input and hostile targets get the right code, exit 1, and change nothing', async () => {
  const netns = await runtimeNetns();
  const ownId = nsId(netns);
  // a second target, and a joiner that already joined web
  const web2 = await host.createContainer('web2');
  await rt.add(loList, { containerId: 'web2', netns: web2.netnsPath, ifname: 'lo' });
  const joined = await runtimeNetns();
  assert.is((await exec('ADD', conf(), { netns: joined, id: 'busy' })).exitCode, 0);
  // planted state, as an attacker (or a bug) would leave it
  const A = '/run/netplumb/attachments';
  const plant = (id: string, file: string, body: unknown) => {
    mkdirSync(`${A}/${id}`, { recursive: true, mode: 0o700 });
    writeFileSync(`${A}/${id}/${file}`, typeof body === 'string' ? body : JSON.stringify(body), { mode: 0o600 });
  };
  const rec = (containerId: string, netnsPath: string, netnsId: string) => ({
    containerId,
    network: 'x',
    ifname: 'lo',
    mode: 'none',
    netns: netnsPath,
    netnsId,
  });
  plant('evil', 'none:x:lo', rec('evil', host.netnsPath, nsId(host.netnsPath)));
  plant('stale', 'none:x:lo', rec('stale', '/run/netns/long-gone', '4:4026530000'));
  plant('reused', 'none:x:lo', rec('reused', web2.netnsPath, '4:4026530001'));
  plant('garbage', 'none:x:lo', '{"containerId":');
  plant('loose', 'none:x:lo', rec('loose', web.netnsPath, nsId(web.netnsPath)));
  chmodSync(`${A}/loose/none:x:lo`, 0o666);
  mkdirSync(`${A}/fifo`, { mode: 0o700 });
  await run(['mkfifo', '-m', '600', `${A}/fifo/none:x:lo`]);
  symlinkSync(`${A}/web`, `${A}/linked`);
  // namespaces that cannot be made to join
  symlinkSync(web2.netnsPath, '/run/netns/a-link');
  const busy = await runtimeNetns();
  await run(['ip', 'link', 'add', 'eth9', 'netns', busy.split('/').pop()!, 'type', 'veth', 'peer', 'name', 'eth9p', 'netns', busy.split('/').pop()!]);

  const cases: Array<[string, string, unknown, Parameters<typeof exec>[2], number, RegExp]> = [
    ['no container', 'ADD', conf('1.1.0', { container: undefined }), { netns }, 7, /needs the container to join/],
    [
      'a path as container',
      'ADD',
      conf('1.1.0', { container: '../../etc' }),
      { netns },
      7,
      /"container" must be a container ID .*"\.\.\/\.\.\/etc" is not a container ID/,
    ],
    ['a slash in container', 'ADD', conf('1.1.0', { container: 'web/../web2' }), { netns }, 7, /"container" must be .*is not a container ID/],
    ['a number as container', 'ADD', conf('1.1.0', { container: 42 }), { netns }, 7, /"container" must be .*42 is not a string/],
    ['hostile CNI_ARGS target', 'ADD', conf(), { netns, args: 'NETPLUMB_CONTAINER=../web' }, 7, /CNI_ARGS NETPLUMB_CONTAINER must be a container ID/],
    ['unknown CNI_ARGS', 'ADD', conf(), { netns, args: 'NETPLUMB_CONTAINER=web;FOO=1' }, 4, /unknown args/],
    ['joining itself', 'ADD', conf('1.1.0', { container: 'side' }), { netns }, 7, /cannot join its own network/],
    ['an unknown container', 'ADD', conf('1.1.0', { container: 'ghost' }), { netns }, 3, /container ghost has no network attached by netplumb/],
    [
      "a target in the host's namespace",
      'ADD',
      conf('1.1.0', { container: 'evil' }),
      { netns },
      8,
      /container evil's network namespace \(net:\[\d+\]\) is the host's \(the plugin's own, net:\[\d+\]\); refusing/,
    ],
    ['a target whose namespace is gone', 'ADD', conf('1.1.0', { container: 'stale' }), { netns }, 3, /network namespace is gone/],
    ['a target path reused by another namespace', 'ADD', conf('1.1.0', { container: 'reused' }), { netns }, 3, /is now net:\[\d+\], not net:\[4026530001\]/],
    ['a torn record', 'ADD', conf('1.1.0', { container: 'garbage' }), { netns }, 106, /not a JSON record/],
    ['a record others may write', 'ADD', conf('1.1.0', { container: 'loose' }), { netns }, 106, /writable by group or others/],
    ['a FIFO as record', 'ADD', conf('1.1.0', { container: 'fifo' }), { netns }, 106, /special file/],
    ['a symbolic link as container directory', 'ADD', conf('1.1.0', { container: 'linked' }), { netns }, 106, /symbolic link/],
    [
      'CNI_NETNS of a running process',
      'ADD',
      conf(),
      { netns: web2.netnsPath },
      8,
      /cannot be made to join container web: it is not a namespace file in \/run\/netns/,
    ],
    ['CNI_NETNS a symbolic link', 'ADD', conf(), { netns: '/run/netns/a-link' }, 8, /symbolic link/],
    ['CNI_NETNS with interfaces of its own', 'ADD', conf(), { netns: busy }, 8, /already has interfaces \(eth9, eth9p\|eth9p, eth9\)|already has interfaces/],
    ["CNI_NETNS the host's", 'ADD', conf(), { netns: host.netnsPath }, 8, /plugin's own network namespace/],
    ['CNI_NETNS missing', 'ADD', conf(), { netns: '/run/netns/nowhere' }, 3, /does not exist/],
    [
      'after another plugin',
      'ADD',
      conf('1.1.0', { prevResult: { cniVersion: '1.1.0', interfaces: [{ name: 'eth0' }] } }),
      { netns },
      7,
      /must be the first plugin/,
    ],
    [
      'already joined another container',
      'ADD',
      conf('1.1.0', { container: 'web2' }),
      { netns: joined, id: 'busy' },
      121,
      /already joined container web; DEL it before joining container web2/,
    ],
    [
      'CHECK against another target',
      'CHECK',
      conf('1.1.0', { container: 'web2' }),
      { netns: joined, id: 'busy' },
      120,
      /joined container web, not container web2/,
    ],
  ];
  for (const [what, command, config, inv, code, re] of cases) {
    const state = modesState();
    const webBefore = await addrView(web);
    const ids = [netns, joined, busy].map(nsId);
    const r = await exec(command as CniCommand, config, { id: 'side', ...inv });
    assertRefused(r, code, re, what, PLUGIN);
    assert.equal(modesState(), state, `${what}: no record and no mount changed`);
    assert.equal(await addrView(web), webBefore, `${what}: web unchanged`);
    assert.equal([netns, joined, busy].map(nsId), ids, `${what}: no namespace file changed`);
  }
  assert.is(nsId(netns), ownId);
  // unsafe entries under other names stop no one else: netplumb-none's DEL looks through every record
  const bystander = await host.createContainer('bystander');
  const lo = { cniVersion: '1.1.0', name: 'lo', type: 'netplumb-none' };
  const inv = { containerId: 'bystander', netns: bystander.netnsPath, ifname: 'lo' };
  assert.is((await rt.exec('ADD', lo, inv, { plugin: 'netplumb-none' })).exitCode, 0);
  const d = await rt.exec('DEL', lo, inv, { plugin: 'netplumb-none' });
  assert.equal([d.exitCode, d.stdout], [0, ''], d.stdout);
  const [bystanderLo] = await bystander.ip<any[]>('link', 'show', 'dev', 'lo');
  assert.not.ok(bystanderLo.flags.includes('UP'), 'its DEL did its work');
  await bystander.destroy();
  assert.is((await exec('DEL', conf(), { netns: joined, id: 'busy' })).exitCode, 0);
  for (const p of [netns, joined, busy]) await removeNetns(p);
  rmSync('/run/netns/a-link');
  for (const d of ['evil', 'stale', 'reused', 'garbage', 'loose', 'fifo']) rmSync(`${A}/${d}`, { recursive: true });
  rmSync(`${A}/linked`);
  await web2.destroy();
});

test('STATUS is ready; with an unsafe state directory it says records cannot be written (50)', async () => {
  assert.equal((await rt.exec('STATUS', conf(), {}, { plugin: PLUGIN })).exitCode, 0);
  renameSync('/run/netplumb/attachments', '/run/netplumb/attachments.real');
  symlinkSync('/run/netplumb/attachments.real', '/run/netplumb/attachments');
  try {
    const st = await rt.exec('STATUS', conf(), {}, { plugin: PLUGIN });
    assert.is(errorOf(st)?.code, 50, st.stdout);
  } finally {
    rmSync('/run/netplumb/attachments');
    renameSync('/run/netplumb/attachments.real', '/run/netplumb/attachments');
  }
});

test.run();
