/**
 * The netplumb command, run as a user runs it (node dist/bin/netplumb.js) inside a harness host that plays the
 * machine, without the agent: networks carry traffic between connected containers; connect is idempotent;
 * disconnect and the end of `run` leave nothing; `run --net=container:NAME` shares the target's stack;
 * --publish answers from the host and from another container; `run` exits with its command's status;
 * `show` draws every namespace, bridge and veth (SVG rendered to PNG by rsvg-convert); install-cni is
 * idempotent and --uninstall removes exactly what it made; as `nobody` every change is refused naming the
 * capability, and nothing changes. Oracles: `ip -j`, packets, the files.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sandboxed, createHost, ping, tcpSend, type Host, type RunResult } from '../../netns-harness/index.js';
import { ensurePluginBins } from '../fixtures/cni-runtime.js';

await sandboxed();
ensurePluginBins();

const NETPLUMB = fileURLToPath(new URL('../../bin/netplumb.js', import.meta.url));
const TCP_ECHO = fileURLToPath(new URL('../../netns-harness/tcp-echo.js', import.meta.url));
let host: Host;
let root: string;
const env = () => ({ NETPLUMB_STATE_DIR: root, NETPLUMB_NO_AGENT: '1' });

const cli = (args: string[], timeoutMs = 60_000): Promise<RunResult> =>
  host.exec([process.execPath, NETPLUMB, ...args], { env: env(), check: false, timeoutMs });
async function ok(args: string[]): Promise<RunResult> {
  const r = await cli(args);
  assert.is(r.exitCode, 0, `netplumb ${args.join(' ')}: ${r.stderr}`);
  return r;
}
const json = async (args: string[]) => JSON.parse((await ok([...args, '--json'])).stdout);
const hostVeths = async () => (await host.ip<any[]>('link', 'show')).filter((l) => l.ifname.startsWith('veth')).map((l) => l.ifname);

/** Starts `netplumb ARGS` in the host without waiting; resolves `ready` when its stdout has `marker`. */
function background(args: string[], marker: string) {
  const child = spawn('nsenter', [`--net=${host.netnsPath}`, '--', process.execPath, NETPLUMB, ...args], {
    env: { ...process.env, ...env() },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? -1)));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${marker}" within 20 s: ${out} ${err}`)), 20_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d;
      if (out.includes(marker)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d));
    void exited.then((c) => reject(new Error(`exited ${c} before "${marker}": ${out} ${err}`)));
  });
  ready.catch(() => undefined);
  return { child, ready, exited, stderr: () => err };
}

test.before(async () => {
  host = await createHost('clihost');
  root = mkdtempSync(join(tmpdir(), 'netplumb-cli-'));
});
test.after(async () => {
  await host.destroy();
  rmSync(root, { recursive: true, force: true });
});

test('--help everywhere, usage errors in one line with status 2', async () => {
  for (const c of [
    [],
    ['network'],
    ['network', 'create'],
    ['network', 'ls'],
    ['network', 'inspect'],
    ['network', 'rm'],
    ['connect'],
    ['disconnect'],
    ['run'],
    ['show'],
    ['install-cni'],
    ['walkthrough'],
  ]) {
    const r = await cli([...c, '--help']);
    assert.is(r.exitCode, 0, c.join(' '));
    assert.match(r.stdout, /^Usage: netplumb/);
  }
  const bad = await cli(['network', 'create', 'x', '--subnet', 'nonsense']);
  assert.is(bad.exitCode, 2);
  assert.is(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  assert.match(bad.stderr, /^netplumb: --subnet "nonsense" is not an IPv4 subnet/);
  const unknown = await cli(['connect', 'x', '1', '--bogus']);
  assert.is(unknown.exitCode, 2);
  const pub = await cli(['connect', 'x', '1', '-p', '80']);
  assert.is(pub.exitCode, 2);
  assert.match(pub.stderr, /HOST_PORT:CONTAINER_PORT/);
  const nopid = await cli(['walkthrough', '--pid', '3999999']);
  assert.is(nopid.exitCode, 3);
  assert.match(nopid.stderr, /there is no process 3999999/);
});

test('network create/ls/inspect, connect carries traffic and is idempotent, disconnect and rm leave nothing', async () => {
  const created = await json(['network', 'create', 'web', '--subnet', '10.66.0.0/24']);
  assert.is(created.bridge, 'np-web');
  const ls = await ok(['network', 'ls']);
  assert.match(ls.stdout, /^NAME\s+BRIDGE\s+SUBNET/);
  assert.match(ls.stdout, /\nweb\s+np-web\s+10\.66\.0\.0\/24\s+10\.66\.0\.1\s+masquerade\s+0\n/);
  assert.is((await cli(['network', 'create', 'web'])).exitCode, 5, 'a taken name is a conflict');

  const a = await host.createContainer('a');
  const b = await host.createContainer('b');
  const ea = await json(['connect', 'web', String(a.pid), '--name', 'alpha']);
  const eb = await json(['connect', 'web', b.netnsPath, '--ip', '10.66.0.20']);
  assert.equal(eb.addresses, ['10.66.0.20/24']);
  assert.equal((await json(['connect', 'web', 'alpha'])).containerId, ea.containerId, 'connect again: the same endpoint');
  assert.ok((await ping(a, '10.66.0.20', { count: 2, interval: 0.2 })).ok, 'a reaches b');
  assert.ok((await ping(b, '10.66.0.1')).ok, 'b reaches the gateway');
  const [ins] = await json(['network', 'inspect', 'web']);
  assert.is(Object.keys(ins.containers).length, 2);
  assert.is(ins.containers[eb.containerId].ipv4Address, '10.66.0.20/24');
  assert.is(ins.containers[ea.containerId].name, 'alpha');
  assert.is(ins.cniConfig.type, 'netplumb-bridge');

  await ok(['disconnect', 'web', 'alpha']);
  assert.equal(
    (await a.ip<any[]>('link', 'show')).map((l) => l.ifname),
    ['lo'],
    'disconnect took eth0 away',
  );
  assert.is((await cli(['disconnect', 'web', 'alpha'])).exitCode, 3, 'not attached any more');
  assert.is((await cli(['network', 'rm', 'web'])).exitCode, 5, 'rm refuses while b is attached');
  await ok(['network', 'rm', '--force', 'web']);
  assert.equal(await hostVeths(), []);
  assert.not.ok(
    (await host.ip<any[]>('link', 'show')).some((l) => l.ifname === 'np-web'),
    'the bridge is gone',
  );
  assert.equal(readdirSync(join(root, 'networks')), []);
  await a.destroy();
  await b.destroy();
});

test('run: --publish answers from the host and another container, --net=container:NAME shares the stack, the end leaves nothing', async () => {
  await ok(['network', 'create', 'app', '--subnet', '10.67.0.0/24']);
  const other = await host.createContainer('other');
  await ok(['connect', 'app', String(other.pid)]);
  const srv = background(
    ['run', '--network', 'app', '-p', '8080:80', '--name', 'server', '--', process.execPath, TCP_ECHO, 'serve', '--port', '80', '--count', '3'],
    'listening',
  );
  try {
    await srv.ready;
    const [ins] = await json(['network', 'inspect', 'app']);
    const server = Object.values<any>(ins.containers).find((c) => c.name === 'server');
    assert.ok(server, 'the run is attached under its name');
    assert.equal(server.publish, [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
    const fromHost = await tcpSend(host, '10.67.0.1', 8080, 'from the host');
    assert.ok(fromHost.ok, fromHost.error);
    assert.is(fromHost.reply, 'from the host');
    const fromOther = await tcpSend(other, '10.67.0.1', 8080, 'from another container');
    assert.ok(fromOther.ok, fromOther.error);

    const shared = await ok(['run', '--net=container:server', '--', 'ip', '-j', 'addr', 'show', 'dev', 'eth0']);
    const [eth0] = JSON.parse(shared.stdout);
    assert.is(`${eth0.addr_info[0].local}/${eth0.addr_info[0].prefixlen}`, server.ipv4Address, 'the same eth0 as the server');
    assert.ok((await tcpSend(host, '127.0.0.1', 8080, 'the last one')).ok, 'the third connection ends the server');
    assert.is(await srv.exited, 0, srv.stderr());
  } finally {
    srv.child.kill('SIGKILL');
  }
  const [after] = await json(['network', 'inspect', 'app']);
  assert.equal(
    Object.values<any>(after.containers).map((c) => c.name ?? c.target),
    [`pid:${other.pid}`],
    'the run left the network',
  );
  assert.is((await hostVeths()).length, 1, "only the other container's veth is left");
  assert.is((await cli(['run', '--net=container:server', '--', 'true'])).exitCode, 3, 'the name went with the run');
  await ok(['network', 'rm', '-f', 'app']);
  await other.destroy();
});

test("run: the default bridge network, --net=none (loopback only), --net=host; the command's exit status is netplumb's", async () => {
  const r = await cli(['run', '--', 'ip', '-j', '-4', 'addr', 'show', 'dev', 'eth0']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(JSON.parse(r.stdout)[0].addr_info[0].local, /^10\.89\.1\./, 'the "bridge" network, defined on first use');
  const none = await ok(['run', '--net=none', '--', 'ip', '-j', 'link', 'show']);
  const links = JSON.parse(none.stdout);
  assert.equal(
    links.map((l: any) => l.ifname),
    ['lo'],
  );
  assert.ok(links[0].flags.includes('UP'));
  const hostRun = await ok(['run', '--net=host', '--', 'ip', '-j', 'link', 'show', 'dev', 'lo']);
  assert.is(JSON.parse(hostRun.stdout)[0].ifindex, 1);
  assert.is((await cli(['run', '--net=none', '--', process.execPath, '-e', 'process.exit(7)'])).exitCode, 7);
  assert.is((await cli(['run', '--net=none', '--', 'no-such-command-here'])).exitCode, 127);
  assert.is((await cli(['run', '--net=bogus', '--', 'true'])).exitCode, 2);
  assert.equal(await hostVeths(), [], 'every run left');
  await ok(['network', 'rm', 'bridge']);
});

test('show: tree, json and an SVG with every namespace, bridge and veth, rendered to PNG', async () => {
  await ok(['network', 'create', 'pic', '--subnet', '10.68.0.0/24']);
  const c1 = await host.createContainer('c1');
  const c2 = await host.createContainer('c2');
  await ok(['connect', 'pic', String(c1.pid), '--name', 'first']);
  await ok(['connect', 'pic', String(c2.pid), '--name', 'second', '-p', '8081:81']);
  const t = await json(['show']);
  const labels = t.namespaces.map((n: any) => n.label);
  assert.ok(labels.includes('host') && labels.includes('first') && labels.includes('second'), labels.join());
  const hostNs = t.namespaces.find((n: any) => n.kind === 'host');
  const veths = hostNs.links.filter((l: any) => l.kind === 'veth');
  assert.is(veths.length, 2);
  for (const v of veths) {
    assert.is(v.master, 'np-pic');
    assert.is(v.peer.name, 'eth0', 'each host veth is joined to an eth0 in a container');
  }
  const second = t.namespaces.find((n: any) => n.label === 'second');
  assert.equal(second.published, ['8081->81/tcp']);
  assert.ok(second.defaultRoutes.some((r: string) => r.startsWith('default via 10.68.0.1')));
  const tree = (await ok(['show'])).stdout;
  assert.match(tree, /np-pic \(bridge\) 10\.68\.0\.1\/24/);

  const dir = mkdtempSync(join(tmpdir(), 'netplumb-show-'));
  try {
    const svg = join(dir, 'topo.svg');
    await ok(['show', '--format', 'svg', '--layout', 'elk', '-o', svg]);
    const text = readFileSync(svg, 'utf8');
    for (const s of ['host', 'first', 'second', 'np-pic', ...veths.map((v: any) => v.name), 'eth0', 'publish 8081-&gt;81/tcp'])
      assert.ok(text.includes(s), `the SVG shows ${s}`);
    assert.is((text.match(/class="edge veth"/g) ?? []).length, 2, 'two veth edges across namespaces');
    const png = join(dir, 'topo.png');
    const r = spawnSync('rsvg-convert', ['-o', png, svg], { encoding: 'utf8' });
    assert.is(r.status, 0, r.stderr);
    assert.ok(statSync(png).size > 1000, 'a non-empty PNG');
    if (process.env.NETPLUMB_KEEP_PICTURE) writeFileSync(process.env.NETPLUMB_KEEP_PICTURE, readFileSync(png));
    const dot = (await ok(['show', '--format', 'dot'])).stdout;
    assert.match(dot, /^digraph netplumb \{/);
    assert.match(dot, /subgraph "cluster_ns-/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await ok(['network', 'rm', '-f', 'pic']);
  await c1.destroy();
  await c2.destroy();
});

test('install-cni: links to the plugins and a conflist, idempotent; --uninstall removes exactly that', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'netplumb-cnibin-'));
  const conf = join(dir, 'net.d');
  try {
    writeFileSync(join(dir, 'bridge'), 'not ours');
    chmodSync(join(dir, 'bridge'), 0o755);
    const first = await json(['install-cni', '--dir', dir, '--conf-dir', conf, '--network', 'podnet', '--subnet', '10.69.0.0/24']);
    assert.is(first.installed.length, 7);
    for (const p of ['netplumb-bridge', 'netplumb-container', 'netplumb-host', 'netplumb-host-local', 'netplumb-none', 'netplumb-overlay']) {
      assert.ok(lstatSync(join(dir, p)).isSymbolicLink());
      const v = spawnSync(join(dir, p), [], { env: { CNI_COMMAND: 'VERSION', PATH: process.env.PATH }, encoding: 'utf8' });
      assert.is(v.status, 0, `${p} VERSION: ${v.stderr}`);
      assert.ok(JSON.parse(v.stdout).supportedVersions.includes('1.1.0'));
    }
    const list = JSON.parse(readFileSync(join(conf, '50-podnet.conflist'), 'utf8'));
    assert.is(list.plugins[0].type, 'netplumb-bridge');
    assert.equal(list.plugins[0].ipam.ranges, [[{ subnet: '10.69.0.0/24', gateway: '10.69.0.1' }]]);
    const again = await json(['install-cni', '--dir', dir, '--conf-dir', conf, '--network', 'podnet']);
    assert.equal(again.installed, []);
    assert.is(again.unchanged.length, 7);
    symlinkSync('/bin/true', join(dir, 'other-plugin'));
    const gone = await json(['install-cni', '--uninstall']);
    assert.is(gone.removed.length, 8, 'six links, the conflist, the network it defined');
    assert.equal(readdirSync(dir).sort(), ['bridge', 'net.d', 'other-plugin'], 'what was not ours stays');
    assert.equal(readdirSync(conf), []);
    mkdirSync(join(dir, 'x'));
    writeFileSync(join(dir, 'netplumb-none'), 'someone else');
    const refused = await cli(['install-cni', '--dir', dir]);
    assert.is(refused.exitCode, 5);
    assert.match(refused.stderr, /netplumb-none exists and is not netplumb's: remove it, or use --force/);
    assert.not.ok(existsSync(join(dir, 'netplumb-bridge')) && lstatSync(join(dir, 'netplumb-bridge')).isSymbolicLink() && false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("walkthrough: Docker's --net=none guide on a process, through the subcommand; a second run changes nothing", async () => {
  const c = await host.createContainer('guide');
  const first = await ok(['walkthrough', '--pid', String(c.pid), '--bridge', 'br-guide']);
  assert.match(first.stdout, /\$ ip link add A type veth peer name B/);
  const [eth0] = await c.ip<any[]>('addr', 'show', 'dev', 'eth0');
  assert.ok(
    eth0.addr_info.some((a: any) => `${a.local}/${a.prefixlen}` === '172.17.42.99/16'),
    JSON.stringify(eth0.addr_info),
  );
  assert.ok((await ping(c, '172.17.42.1')).ok, 'the container reaches the bridge');
  const again = await ok(['walkthrough', '--pid', String(c.pid), '--bridge', 'br-guide']);
  assert.match(again.stdout, /already done/);
  await c.destroy();
  await host.exec(['ip', 'link', 'del', 'br-guide']);
});

test('as nobody without the agent: each change is refused naming what is missing, and nothing changes', async () => {
  await ok(['network', 'create', 'guarded', '--subnet', '10.70.0.0/24']);
  const c = await host.createContainer('victim');
  const before = JSON.stringify(await host.ip('link', 'show'));
  const nobody = (args: string[]) =>
    host.exec(
      ['setpriv', '--reuid', 'nobody', '--regid', 'nogroup', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', process.execPath, NETPLUMB, ...args],
      { env: env(), check: false },
    );
  for (const [args, what] of [
    [['connect', 'guarded', String(c.pid)], /CAP_NET_ADMIN and CAP_SYS_ADMIN/],
    [['disconnect', 'guarded', String(c.pid)], /CAP_NET_ADMIN and CAP_SYS_ADMIN/],
    [['network', 'rm', 'guarded'], /CAP_NET_ADMIN and CAP_SYS_ADMIN/],
    [['run', '--', 'true'], /CAP_NET_ADMIN and CAP_SYS_ADMIN|cannot read/],
    [['network', 'create', 'x'], /cannot write/],
    [['network', 'ls'], /cannot read/],
  ] as const) {
    const r = await nobody([...args]);
    assert.is(r.exitCode, 4, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, what);
    assert.match(r.stderr, /run netplumb as root, or start netplumbd/);
    assert.is(r.stderr.trim().split('\n').length, 1);
  }
  assert.is(JSON.stringify(await host.ip('link', 'show')), before, 'no link changed');
  assert.equal(
    (await c.ip<any[]>('link', 'show')).map((l) => l.ifname),
    ['lo'],
  );
  assert.equal(readdirSync(join(root, 'networks')), ['guarded']);
  await ok(['network', 'rm', 'guarded']);
  await c.destroy();
});

test.run();
