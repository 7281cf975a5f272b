/**
 * The --net=none walkthrough on a process started outside the project (`unshare -n sleep 600` inside a harness
 * host), run as a program the way a user runs it; checked with `ip -j` and a ping to the gateway.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sandboxed, createHost, ipJson, run, inNetns, waitForExec, waitFor, type Host } from '../../netns-harness/index.js';

await sandboxed();

const WALKTHROUGH = fileURLToPath(new URL('../../examples/net-none-walkthrough.js', import.meta.url));

let host: Host;
let proc: ChildProcess;
let pid: number;

/** A process that unshared its own network namespace, started with plain util-linux tools in the host. */
async function startOutsider(where: Host): Promise<ChildProcess> {
  const [file, ...args] = inNetns(where.netnsPath, ['unshare', '-n', 'sleep', '600']) as [string, ...string[]];
  const child = spawn(file, args, { stdio: 'ignore' });
  // nsenter and unshare exec in turn, so the PID ends up being sleep's
  await waitForExec(child, 'sleep', 'unshare -n sleep');
  return child;
}

/** Runs the walkthrough in the host's namespace, which plays the machine. */
const walk = (...args: string[]) => host.exec([process.execPath, WALKTHROUGH, ...args], { check: false, timeoutMs: 60_000 });

test.before(async () => {
  host = await createHost('machine');
  proc = await startOutsider(host);
  pid = proc.pid!;
  assert.is.not(readlinkSync(`/proc/${pid}/ns/net`), host.netnsId, 'the process has a namespace of its own');
});
test.after(async () => {
  proc.kill('SIGKILL');
  await host.destroy();
});

test("the guide's steps, printed and done", async () => {
  const r = await walk('--pid', String(pid));
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
  const lines = r.stdout;
  for (const expected of [
    `$ ln -s /proc/${pid}/ns/net /var/run/netns/${pid}`,
    '$ ip link add docker0 type bridge',
    '$ ip link add A type veth peer name B',
    '$ ip link set A master docker0',
    '$ ip link set A up',
    `$ ip link set B netns ${pid}`,
    `$ ip netns exec ${pid} ip link set dev B name eth0`,
    `$ ip netns exec ${pid} ip link set eth0 up`,
    `$ ip netns exec ${pid} ip addr add 172.17.42.99/16 dev eth0`,
    `$ ip netns exec ${pid} ip route add default via 172.17.42.1`,
  ]) {
    assert.ok(lines.includes(expected), `prints ${expected}\n${lines}`);
  }
  // the oracle: iproute2 in the host and in the process's namespace
  assert.is(readlinkSync(`/var/run/netns/${pid}`), `/proc/${pid}/ns/net`);
  const [br] = await host.ip<any[]>('-d', 'addr', 'show', 'dev', 'docker0');
  assert.is(br.linkinfo.info_kind, 'bridge');
  assert.equal(
    br.addr_info.filter((a: any) => a.family === 'inet').map((a: any) => `${a.local}/${a.prefixlen}`),
    ['172.17.42.1/16'],
  );
  const [a] = await host.ip<any[]>('link', 'show', 'dev', 'A');
  assert.is(a.master, 'docker0');
  assert.ok(a.flags.includes('UP'));
  assert.is(
    (await host.ip<any[]>('link', 'show')).find((l) => l.ifname === 'B'),
    undefined,
    'B left the host',
  );
  const ns = `/proc/${pid}/ns/net`;
  const [eth0] = await ipJson<any[]>(['addr', 'show', 'dev', 'eth0'], ns);
  assert.ok(eth0.flags.includes('UP'));
  assert.equal(
    eth0.addr_info.filter((x: any) => x.family === 'inet').map((x: any) => `${x.local}/${x.prefixlen}`),
    ['172.17.42.99/16'],
  );
  const routes = await ipJson<any[]>(['route', 'show', 'default'], ns);
  assert.equal(
    routes.map((x) => [x.gateway, x.dev]),
    [['172.17.42.1', 'eth0']],
  );
  // and `ip netns` finds it under the PID
  const viaName = await ipJson<any[]>(['-n', String(pid), 'link', 'show', 'eth0']);
  assert.is(viaName[0].ifname, 'eth0');
  // the container reaches the gateway
  const p = await run(['ping', '-c', '2', '-i', '0.2', '-W', '2', '172.17.42.1'], { netns: ns, check: false });
  assert.is(p.exitCode, 0, p.stdout + p.stderr);
  assert.match(p.stdout, /2 packets transmitted, 2 received/);
});

/**
 * What the walkthrough owns in a namespace: its links (kind, master, admin state), their IPv4 addresses and
 * the IPv4 routes. Not the kernel's own IPv6 link-local addresses, whose flags (`tentative`) and lifetimes
 * change by themselves while a test runs.
 */
async function owned(netns: string): Promise<string> {
  const links = await ipJson<any[]>(['-d', 'addr', 'show'], netns);
  const routes = await ipJson<any[]>(['-4', 'route', 'show'], netns);
  return JSON.stringify({
    links: links.map((l) => ({
      name: l.ifname,
      kind: l.linkinfo?.info_kind,
      master: l.master,
      up: l.flags.includes('UP'),
      v4: l.addr_info.filter((a: any) => a.family === 'inet').map((a: any) => `${a.local}/${a.prefixlen}`),
    })),
    routes: routes.map((r) => [r.dst, r.gateway, r.dev, r.prefsrc]),
  });
}

test('running it again reports it is already done and changes nothing', async () => {
  const world = async () => [await owned(host.netnsPath), await owned(`/proc/${pid}/ns/net`)];
  const before = await world();
  assert.match(before[0]!, /"docker0"/);
  assert.match(before[1]!, /172\.17\.42\.99\/16/);
  const r = await walk('--pid', String(pid));
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`${pid} is already done`));
  assert.not.match(r.stdout, /\$ ip link add/);
  assert.equal(await world(), before);
});

test("a PID in the host's own namespace is refused before anything is done", async () => {
  const r = await walk('--pid', String(host.pid));
  assert.is.not(r.exitCode, 0);
  assert.match(r.stderr, /own network namespace/);
});

test('--cleanup removes the link once the process is gone, as find -L … -delete does', async () => {
  proc.kill('SIGKILL');
  await new Promise((r) => (proc.exitCode !== null || proc.signalCode !== null ? r(null) : proc.once('exit', r)));
  assert.ok(existsSync(`/var/run/netns/${pid}`) === false, 'the link dangles (existsSync follows it)');
  const r = await walk('--cleanup');
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`removed /var/run/netns/${pid}`));
  assert.is((await run(['ls', '-A', '/var/run/netns'])).stdout.trim(), '');
  // with the namespace gone, A (whose peer died with it) goes from the host as well; the kernel tears a
  // namespace down in a work queue, so give it a moment
  const gone = await waitFor(async () => !(await host.ip<any[]>('link', 'show')).some((l) => l.ifname === 'A'));
  assert.ok(gone, "A left the host with its peer's namespace");
});

test("on today's docker0 (172.17.0.1/16, a container at the top): the bridge's address, the next free one from the top, probed", async () => {
  const machine = await createHost('docker-today');
  let outsider: ChildProcess | undefined;
  try {
    // docker0 as Docker 20.10 makes it, and a neighbour that already holds the subnet's top address
    await machine.exec(['ip', 'link', 'add', 'docker0', 'type', 'bridge']);
    await machine.exec(['ip', 'addr', 'add', '172.17.0.1/16', 'dev', 'docker0']);
    await machine.exec(['ip', 'link', 'set', 'docker0', 'up']);
    const other = await machine.createContainer('other');
    await machine.exec(['ip', 'link', 'add', 'vother', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', other.netnsPath]);
    await machine.exec(['ip', 'link', 'set', 'vother', 'master', 'docker0', 'up']);
    await other.exec(['ip', 'addr', 'add', '172.17.255.254/16', 'dev', 'eth0']);
    await other.exec(['ip', 'link', 'set', 'eth0', 'up']);
    // A bridge gets its carrier from its first port through the kernel's link watch, which may lag a second
    // behind; until then the bridge transmits nothing and the probe below would go unanswered.
    const carrier = (links: any[]) => links.length === 1 && links[0].flags.includes('LOWER_UP');
    assert.ok(await waitFor(async () => carrier(await machine.ip<any[]>('link', 'show', 'dev', 'docker0'))), 'docker0 has its carrier');
    assert.ok(
      await waitFor(async () => carrier(await ipJson<any[]>(['link', 'show', 'dev', 'eth0'], other.netnsPath))),
      "the neighbour's eth0 has its carrier",
    );
    outsider = await startOutsider(machine);
    const opid = outsider.pid!;
    const walkHere = (...args: string[]) => machine.exec([process.execPath, WALKTHROUGH, ...args], { check: false, timeoutMs: 60_000 });
    const r = await walkHere('--pid', String(opid));
    assert.is(r.exitCode, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /172\.17\.255\.254 is taken on docker0 \([0-9a-f:]{17} answered an ARP probe\)/);
    assert.match(r.stdout, /docker0 has 172\.17\.0\.1\/16: eth0 gets 172\.17\.255\.253\/16 from the top of the subnet/);
    assert.ok(r.stdout.includes(`$ ip netns exec ${opid} ip route add default via 172.17.0.1`), r.stdout);
    assert.not.match(r.stdout, /ip addr add .* dev docker0/, 'the bridge keeps its own address');
    // the oracle: iproute2, and packets to the gateway and the neighbour
    const ns = `/proc/${opid}/ns/net`;
    const [eth0] = await ipJson<any[]>(['addr', 'show', 'dev', 'eth0'], ns);
    assert.equal(
      eth0.addr_info.filter((x: any) => x.family === 'inet').map((x: any) => `${x.local}/${x.prefixlen}`),
      ['172.17.255.253/16'],
    );
    const [br] = await machine.ip<any[]>('addr', 'show', 'dev', 'docker0');
    assert.equal(
      br.addr_info.filter((a: any) => a.family === 'inet').map((a: any) => `${a.local}/${a.prefixlen}`),
      ['172.17.0.1/16'],
    );
    for (const dst of ['172.17.0.1', '172.17.255.254']) {
      const p = await run(['ping', '-c', '1', '-W', '2', dst], { netns: ns, check: false });
      assert.is(p.exitCode, 0, `${dst}: ${p.stdout}${p.stderr}`);
    }
    // a second run keeps the address it gave (the container itself would answer a new probe for it)
    const again = await walkHere('--pid', String(opid));
    assert.is(again.exitCode, 0, again.stdout + again.stderr);
    assert.match(again.stdout, new RegExp(`${opid} is already done: .* has 172\\.17\\.255\\.253/16`));
  } finally {
    outsider?.kill('SIGKILL');
    await machine.destroy();
  }
});

test('without --pid it shows itself on a harness container and pings the gateway', async () => {
  const r = await run([process.execPath, WALKTHROUGH], { check: false, timeoutMs: 60_000 });
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /\$ ip link add A type veth peer name B/);
  assert.match(r.stdout, /is already done/, 'the second pass finds everything in place');
  assert.match(r.stdout, /3 packets transmitted, 3 received, 0% packet loss/);
  assert.match(r.stdout, /# removed \/var\/run\/netns\/\d+/);
});

test.run();
