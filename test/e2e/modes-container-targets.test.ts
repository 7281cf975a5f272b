/**
 * netplumb-container's three kinds of target, executed as a runtime executes the plugins:
 *  - a container netplumb-bridge attached, by its recorded ID (Docker's --net=container:<id> on the default
 *    bridge network);
 *  - a process started outside netplumb (a harness container with an eth0 made by `ip link`), by its PID
 *    (`1234`, `pid:1234`);
 *  - a namespace by path (`/run/netns/x` made by `ip netns attach`, `/var/run/netns/x`, `ns:…`, `/proc/PID/ns/net`).
 * After ADD a process started through CNI_NETNS sees the target's eth0 (`ip -j addr` through nsenter) and
 * reaches a TCP service the target runs on 127.0.0.1; DEL gives the runtime its namespace back (twice), also
 * when the target is gone. Refused targets (no such PID, an exited one, a regular file, `..`, the host's own
 * namespace, CNI_NETNS itself) get their code, exit 1 and change nothing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import {
  sandboxed,
  createHost,
  CniRuntime,
  ipJson,
  run,
  startEchoServer,
  tcpSend,
  waitFor,
  type Container,
  type Host,
  type CniCommand,
} from '../../netns-harness/index.js';
import { cniRuntime, ensurePluginBins } from '../fixtures/cni-runtime.js';
import { addrView, errorOf, modesState, mountsAt, nsId, removeNetns, runtimeNetns } from '../fixtures/modes.js';
import { assertRefused } from '../fixtures/assert.js';

await sandboxed();
ensurePluginBins();

const PLUGIN = 'netplumb-container';
const BR_NET = 'brnet';
let host: Host;
let rt: CniRuntime;
/** attached by netplumb-bridge (containerID "nb") */
let nb: Container;
let nbIp: string;
/** started outside netplumb; eth0 10.81.0.2/24 made with `ip link` */
let plain: Container;

const bridgeConf = {
  cniVersion: '1.1.0',
  name: BR_NET,
  type: 'netplumb-bridge',
  bridge: 'np-targets0',
  isGateway: true,
  ipam: { type: 'netplumb-host-local', ranges: [[{ subnet: '10.80.0.0/24' }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: '/run/cni-targets/ipam' },
};
const conf = (container: unknown) => ({ cniVersion: '1.1.0', name: 'joined', type: PLUGIN, container });
const exec = (command: CniCommand, config: unknown, id: string, netns: string | undefined) =>
  rt.exec(command, config, { containerId: id, netns, ifname: 'eth0' }, { plugin: (config as { type?: string }).type ?? PLUGIN });

/** A harness container with an eth0 (a veth made by iproute2, not by netplumb) and lo up. */
async function plainContainer(name: string, addr: string): Promise<Container> {
  const c = await host.createContainer(name, { loopbackUp: true });
  const peer = `v${name}`.slice(0, 15);
  await host.exec(['ip', 'link', 'add', peer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', String(c.pid)]);
  await host.exec(['ip', 'link', 'set', peer, 'up']);
  await c.exec(['ip', 'addr', 'add', addr, 'dev', 'eth0']);
  await c.exec(['ip', 'link', 'set', 'eth0', 'up']);
  return c;
}

/**
 * ADD of `id` joining `target` through a fresh runtime namespace file; the oracles: the file is the
 * target's namespace, iproute2 through it shows the target's links and addresses (eth0 among them), a TCP
 * service the target runs on 127.0.0.1 answers a client started through the file. Then DEL twice gives the
 * runtime its own namespace back and leaves the target as it was.
 */
async function joinAndLeave(id: string, target: string, holder: Container, port: number): Promise<any> {
  const netns = await runtimeNetns('tgt');
  const own = nsId(netns);
  const before = await addrView(holder);
  const add = await exec('ADD', conf(target), id, netns);
  assert.is(add.exitCode, 0, `${target}: ${add.stdout}${add.stderr}`);
  assert.is(nsId(netns), nsId(holder.netnsPath), `${target}: CNI_NETNS is the target's namespace`);
  const seen = await ipJson<any[]>(['addr', 'show'], netns);
  assert.ok(
    seen.some((l) => l.ifname === 'eth0'),
    `${target}: eth0 seen through CNI_NETNS`,
  );
  assert.equal(await addrView(netns), before, `${target}: the target's links and addresses`);
  assert.equal(
    add.json.interfaces.map((i: any) => [i.name, i.sandbox]),
    [['eth0', netns]],
  );
  const srv = await startEchoServer(holder, port, '127.0.0.1');
  const echo = await tcpSend({ netnsPath: netns }, '127.0.0.1', port, `hello ${id}`);
  await srv.stop();
  assert.equal([echo.ok, echo.reply], [true, `hello ${id}`], `${target}: ${echo.error}`);
  const check = await exec('CHECK', conf(target), id, netns);
  assert.equal([check.exitCode, check.stdout], [0, ''], check.stdout);
  const record = JSON.parse(Buffer.from(modesState().records[`attachments/${id}/container:joined:eth0`]!.split(' ')[1]!, 'base64').toString());
  for (let i = 0; i < 2; i++) {
    const del = await exec('DEL', conf(target), id, netns);
    assert.equal([del.exitCode, del.stdout], [0, ''], del.stdout);
    assert.is(nsId(netns), own, `${target}: the runtime's own namespace is back`);
    assert.is(mountsAt(netns).length, 1);
  }
  assert.equal(
    (await ipJson<any[]>(['link', 'show'], netns)).map((l) => l.ifname),
    ['lo'],
  );
  assert.equal(await addrView(holder), before, `${target}: DEL never touches the target's interfaces`);
  assert.is(modesState().records[`attachments/${id}/container:joined:eth0`], undefined);
  await removeNetns(netns);
  return record;
}

/** Waits (bounded) until the host has no link `name`: the kernel dismantles a freed namespace in a work queue. */
async function hostLinkGone(name: string): Promise<boolean> {
  return waitFor(async () => !(await host.ip<any[]>('link', 'show')).some((l) => l.ifname === name));
}

test.before(async () => {
  host = await createHost('tgthost');
  rt = cniRuntime({ host });
  nb = await host.createContainer('nb', { loopbackUp: true });
  const r = await rt.exec('ADD', bridgeConf, { containerId: 'nb', netns: nb.netnsPath, ifname: 'eth0' });
  assert.is(r.exitCode, 0, r.stdout);
  nbIp = r.json.ips[0].address;
  plain = await plainContainer('plain', '10.81.0.2/24');
});
test.after(async () => {
  await host.destroy();
});

test('joins a container netplumb-bridge attached, by its recorded ID', async () => {
  assert.ok(modesState().records[`attachments/nb/bridge:${BR_NET}:eth0`], 'netplumb-bridge recorded the attachment');
  const port = (await host.ip<any[]>('link', 'show', 'master', 'np-targets0')).map((l) => l.ifname);
  await joinAndLeave('j-bridge', 'nb', nb, 7100);
  const addrs = (await nb.ip<any[]>('-4', 'addr', 'show', 'dev', 'eth0'))[0].addr_info.map((a: any) => `${a.local}/${a.prefixlen}`);
  assert.equal(addrs, [nbIp], 'nb keeps its address');
  assert.equal(
    (await host.ip<any[]>('link', 'show', 'master', 'np-targets0')).map((l) => l.ifname),
    port,
    'and its bridge port',
  );
});

test('joins a process started outside netplumb by its PID (digits, pid:N)', async () => {
  for (const [i, target] of [String(plain.pid), `pid:${plain.pid}`].entries()) {
    const record = await joinAndLeave(`j-pid${i}`, target, plain, 7110 + i);
    assert.is(record.joined.container, `pid:${plain.pid}`, 'recorded in its canonical form');
    assert.match(record.joined.pidStart, /^\d+$/, "with the process's start time");
  }
});

test('joins a namespace by path (/run/netns, /var/run/netns, ns:, /proc/PID/ns/net)', async () => {
  await run(['ip', 'netns', 'attach', 'plain-ns', String(plain.pid)]);
  const paths = ['/run/netns/plain-ns', '/var/run/netns/plain-ns', 'ns:/run/netns/plain-ns', `/proc/${plain.pid}/ns/net`];
  for (const [i, target] of paths.entries()) await joinAndLeave(`j-path${i}`, target, plain, 7120 + i);
  // per invocation, as a runtime names it in CNI_ARGS (which wins over "container")
  const netns = await runtimeNetns('tgt');
  const inv = { containerId: 'j-args', netns, ifname: 'eth0', args: 'IgnoreUnknown=1;NETPLUMB_CONTAINER=/run/netns/plain-ns' };
  assert.is((await rt.exec('ADD', conf('nb'), inv, { plugin: PLUGIN })).exitCode, 0);
  assert.is(nsId(netns), nsId(plain.netnsPath));
  assert.is((await rt.exec('DEL', conf('nb'), inv, { plugin: PLUGIN })).exitCode, 0);
  await removeNetns(netns);
  await removeNetns('/run/netns/plain-ns');
});

test('an all-digit value is a PID even when a container has that ID; id: names the container', async () => {
  // 4194304 is PID_MAX_LIMIT: no process can have it
  const digits = await host.createContainer('digits', { loopbackUp: true });
  const lo = { cniVersion: '1.1.0', name: 'lo', type: 'netplumb-none' };
  assert.is((await rt.exec('ADD', lo, { containerId: '4194304', netns: digits.netnsPath, ifname: 'lo' }, { plugin: 'netplumb-none' })).exitCode, 0);
  const netns = await runtimeNetns('tgt');
  const asPid = await exec('ADD', conf('4194304'), 'j-digits', netns);
  assert.is(errorOf(asPid)?.code, 3, asPid.stdout);
  assert.match(asPid.json.msg, /there is no process 4194304/);
  const asId = await exec('ADD', conf('id:4194304'), 'j-digits', netns);
  assert.is(asId.exitCode, 0, asId.stdout);
  assert.is(nsId(netns), nsId(digits.netnsPath));
  assert.is((await exec('DEL', conf('id:4194304'), 'j-digits', netns)).exitCode, 0);
  assert.is((await rt.exec('DEL', lo, { containerId: '4194304', netns: digits.netnsPath, ifname: 'lo' }, { plugin: 'netplumb-none' })).exitCode, 0);
  await removeNetns(netns);
  await digits.destroy();
});

test('DEL after the target is gone succeeds and undoes only the mount (PID, recorded and path targets)', async () => {
  // a process target that exits while joined: its namespace lives on through the mount until DEL
  const doomed = await plainContainer('doomed', '10.82.0.2/24');
  const netns = await runtimeNetns('tgt');
  const own = nsId(netns);
  assert.is((await exec('ADD', conf(`pid:${doomed.pid}`), 'j-gone', netns)).exitCode, 0);
  const joinedId = nsId(netns);
  await doomed.destroy();
  assert.is(nsId(netns), joinedId, 'the joined namespace outlives its process');
  const check = await exec('CHECK', conf(`pid:${doomed.pid}`), 'j-gone', netns);
  assert.is(errorOf(check)?.code, 120, check.stdout);
  for (let i = 0; i < 2; i++) {
    const del = await exec('DEL', conf(`pid:${doomed.pid}`), 'j-gone', netns);
    assert.equal([del.exitCode, del.stdout], [0, ''], del.stdout);
    assert.is(nsId(netns), own);
  }
  // the last reference to doomed's namespace went with the mount, and with it the veth pair
  assert.ok(await hostLinkGone('vdoomed'), "doomed's namespace is freed");
  await removeNetns(netns);

  // a namespace file deleted (`ip netns delete`) while joined by path
  await run(['ip', 'netns', 'add', 'gone-ns']);
  await host.exec(['ip', 'link', 'add', 'vgonens', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', 'gone-ns']);
  const p = await runtimeNetns('tgt');
  const ownP = nsId(p);
  assert.is((await exec('ADD', conf('/run/netns/gone-ns'), 'j-gone3', p)).exitCode, 0);
  await removeNetns('/run/netns/gone-ns');
  assert.ok(
    (await ipJson<any[]>(['link', 'show'], p)).some((l) => l.ifname === 'eth0'),
    'the joined namespace outlives its file',
  );
  for (let i = 0; i < 2; i++) {
    const del = await exec('DEL', conf('/run/netns/gone-ns'), 'j-gone3', p);
    assert.equal([del.exitCode, del.stdout], [0, ''], del.stdout);
    assert.is(nsId(p), ownP);
  }
  assert.ok(await hostLinkGone('vgonens'), 'the namespace is freed with the mount');
  await removeNetns(p);

  // a bridge-attached target removed (bridge DEL, process gone) before the joiner's DEL
  const gone = await host.createContainer('gone', { loopbackUp: true });
  const att = { containerId: 'gone', netns: gone.netnsPath, ifname: 'eth0' };
  assert.is((await rt.exec('ADD', bridgeConf, att)).exitCode, 0);
  const j = await runtimeNetns('tgt');
  const ownJ = nsId(j);
  assert.is((await exec('ADD', conf('gone'), 'j-gone2', j)).exitCode, 0);
  assert.is((await rt.exec('DEL', bridgeConf, att)).exitCode, 0);
  assert.is(modesState().records[`attachments/gone/bridge:${BR_NET}:eth0`], undefined, 'bridge DEL forgot the target');
  await gone.destroy();
  const del = await exec('DEL', conf('gone'), 'j-gone2', '');
  assert.equal([del.exitCode, del.stdout], [0, ''], del.stdout);
  assert.is(nsId(j), ownJ);
  await removeNetns(j);
});

test('refused targets get their code, exit 1, and change nothing', async () => {
  const netns = await runtimeNetns('tgt');
  const ownId = nsId(netns);
  // an exited process's PID (started and reaped here)
  const child = spawn('true', { stdio: 'ignore' });
  const exitedPid = child.pid!;
  await once(child, 'exit');
  mkdirSync('/run/targets', { recursive: true });
  writeFileSync('/run/targets/plain-file', '');
  symlinkSync(`/proc/${plain.pid}/ns/net`, '/run/targets/a-link');
  await run(['ip', 'netns', 'attach', 'plain-ns2', String(plain.pid)]);

  const cases: Array<[string, unknown, number, RegExp]> = [
    ['a PID no process can have', '4194304', 3, /process 4194304: there is no process 4194304/],
    ['an exited process', `pid:${exitedPid}`, 3, new RegExp(`there is no process ${exitedPid}|process ${exitedPid} has exited`)],
    ['PID 0', 'pid:0', 7, /is not a PID/],
    ['a negative PID', '-5', 7, /is not a container ID/],
    ['a regular file', '/run/targets/plain-file', 8, /is not a network namespace \(no network namespace is mounted on it\)/],
    ['a directory', '/run/netns', 8, /is a directory/],
    ['a symbolic link to a namespace', '/run/targets/a-link', 8, /symbolic link/],
    ['a missing file', '/run/netns/nowhere', 3, /does not exist/],
    ['a path with ..', '/run/netns/../netns/plain-ns2', 7, /has a "\.\." segment/],
    ['ns: with ..', 'ns:/run/../run/netns/plain-ns2', 7, /has a "\.\." segment/],
    ['a relative path', 'netns/plain-ns2', 7, /as a path it is not absolute/],
    ['another kind of namespace', `/proc/${plain.pid}/ns/uts`, 8, /symbolic link|not a network namespace/],
    ["the host's namespace by PID", String(host.pid), 8, /the network namespace of process \d+ \(net:\[\d+\]\) is the host's \(the plugin's own/],
    ["the host's namespace by path", `/proc/${host.pid}/ns/net`, 8, /is the host's \(the plugin's own/],
    ["the plugin's own namespace by /proc/self", '/proc/self/ns/net', 8, /is the host's \(the plugin's own/],
    ['CNI_NETNS itself', netns, 7, /is CNI_NETNS .* itself: a container cannot join its own network namespace/],
    ['CNI_NETNS itself, with ns:', `ns:${netns}`, 7, /itself/],
    ['CNI_NETNS itself, through /var/run', netns.replace('/run/', '/var/run/'), 7, /itself/],
    ['an unknown prefix', 'host:1', 7, /unknown prefix "host:"/],
  ];
  for (const [what, target, code, re] of cases) {
    const state = modesState();
    const plainBefore = await addrView(plain);
    const r = await exec('ADD', conf(target), 'refused', netns);
    assertRefused(r, code, re, what, PLUGIN);
    assert.equal(modesState(), state, `${what}: no record and no mount changed`);
    assert.is(nsId(netns), ownId, `${what}: CNI_NETNS unchanged`);
    assert.equal(await addrView(plain), plainBefore, `${what}: the target unchanged`);
  }
  const del = await exec('DEL', conf('4194304'), 'refused', netns);
  assert.equal([del.exitCode, del.stdout], [0, ''], 'DEL of a refused ADD succeeds');
  await removeNetns(netns);
  await removeNetns('/run/netns/plain-ns2');
  rmSync('/run/targets', { recursive: true });
});

test.run();
