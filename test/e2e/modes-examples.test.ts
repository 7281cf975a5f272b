/**
 * The example conflists (examples/conflists) and the install guide (examples/README.md): every list parses and
 * is a valid network configuration; the plugins installed as the guide says (symbolic links, or the wrapper
 * with `import()`) answer; the none, host and container lists go through ADD, CHECK and DEL like a runtime runs
 * them; the bridge list's keys are the reference bridge's (run with the reference bridge and host-local), and
 * with netplumb-bridge itself when it is built.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sandboxed, createHost, run, type Host, type NetworkConfigList } from '../../netns-harness/index.js';
import { cniRuntime, ensurePluginBins, NETPLUMB_BIN, REFERENCE_BIN } from '../fixtures/cni-runtime.js';
import { expectedDescription, nsId, VERSIONS } from '../fixtures/modes.js';

await sandboxed();
ensurePluginBins();

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const DIR = join(REPO, 'examples/conflists');
const README = readFileSync(join(REPO, 'examples/README.md'), 'utf8');
const PLUGINS = ['netplumb-bridge', 'netplumb-container', 'netplumb-host', 'netplumb-host-local', 'netplumb-none'];
/** /opt/cni/bin of the guide, inside the sandbox's private /run */
const BIN = '/run/opt-cni-bin';
const lists = new Map<string, NetworkConfigList>();
let host: Host;

test.before(async () => {
  host = await createHost('examples');
});
test.after(async () => {
  await host.destroy();
});

test('every example conflist parses and is a valid network configuration list', () => {
  const files = readdirSync(DIR).sort();
  assert.equal(files, ['netplumb-bridge.conflist', 'netplumb-container.conflist', 'netplumb-host.conflist', 'netplumb-none.conflist']);
  for (const f of files) {
    const list = JSON.parse(readFileSync(join(DIR, f), 'utf8')) as NetworkConfigList;
    assert.ok((VERSIONS as readonly string[]).includes(list.cniVersion), `${f}: cniVersion`);
    assert.match(list.name, /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, `${f}: name`);
    assert.ok(Array.isArray(list.plugins) && list.plugins.length > 0, `${f}: plugins`);
    for (const p of list.plugins) {
      assert.ok(PLUGINS.includes(p.type), `${f}: ${p.type} is a netplumb plugin`);
      const ipam = (p as { ipam?: { type?: string } }).ipam;
      if (ipam) assert.ok(PLUGINS.includes(ipam.type ?? ''), `${f}: IPAM ${ipam.type}`);
    }
    assert.ok(README.includes(`conflists/${f}`), `${f} is described in examples/README.md`);
    lists.set(f.replace('.conflist', ''), list);
  }
  assert.equal(lists.get('netplumb-bridge')!.plugins[0]!.capabilities, { portMappings: true });
});

test('installed as the guide says (links into /opt/cni/bin, or the import() wrapper), the plugins answer', async () => {
  mkdirSync(BIN, { recursive: true });
  for (const p of PLUGINS) {
    if (p === 'netplumb-none') {
      // the wrapper of the guide, for a node outside the runtime's PATH
      writeFileSync(join(BIN, p), `#!${process.execPath}\nimport(${JSON.stringify(join(NETPLUMB_BIN, `${p}.js`))});\n`);
      chmodSync(join(BIN, p), 0o755);
    } else symlinkSync(join(NETPLUMB_BIN, p), join(BIN, p));
  }
  for (const p of ['netplumb-container', 'netplumb-host', 'netplumb-host-local', 'netplumb-none']) {
    // a runtime's environment: little more than PATH
    const r = await run([join(BIN, p)], { env: { CNI_COMMAND: 'VERSION' }, cleanEnv: true, check: false });
    assert.is(r.exitCode, 0, `${p}: ${r.stdout}${r.stderr}`);
    assert.equal(JSON.parse(r.stdout), { cniVersion: '1.1.0', supportedVersions: [...VERSIONS] }, p);
  }
});

test('the none, host and container lists: ADD, CHECK and DEL through the installed plugins', async () => {
  const rt = cniRuntime({ cniPath: [BIN, REFERENCE_BIN], host });
  // none: container "web" gets loopback only
  const web = await host.createContainer('web');
  const none = lists.get('netplumb-none')!;
  const webAtt = { containerId: 'web', netns: web.netnsPath, ifname: 'lo' };
  const r1 = await rt.add(none, webAtt);
  assert.equal(r1.interfaces, [{ name: 'lo', mac: '00:00:00:00:00:00', sandbox: web.netnsPath }]);
  const [lo] = await web.ip<any[]>('addr', 'show', 'dev', 'lo');
  assert.ok(lo.flags.includes('UP'));
  await rt.check(none, webAtt);

  // host: the host's own namespace; the Result is the host's network
  await host.exec(['ip', 'link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'wire0']);
  await host.exec(['ip', 'addr', 'add', '192.0.2.10/24', 'dev', 'uplink0']);
  const hostList = lists.get('netplumb-host')!;
  const hostAtt = { containerId: 'hostctr', netns: host.netnsPath, ifname: 'eth0' };
  const r2 = await rt.add(hostList, hostAtt);
  const { routes: _, ...want } = await expectedDescription(host.netnsPath, host.netnsPath);
  assert.equal({ interfaces: r2.interfaces, ips: r2.ips }, want);
  await rt.check(hostList, hostAtt);
  await rt.del(hostList, hostAtt);

  // container: a runtime's namespace file for "side", joined to web
  await run(['ip', 'netns', 'add', 'side']);
  const own = nsId('/run/netns/side');
  const joinList = lists.get('netplumb-container')!;
  const sideAtt = { containerId: 'side', netns: '/run/netns/side', ifname: 'eth0' };
  await rt.add(joinList, sideAtt);
  assert.is(nsId('/run/netns/side'), nsId(web.netnsPath), "side is in web's namespace");
  await rt.check(joinList, sideAtt);
  await rt.del(joinList, sideAtt);
  assert.is(nsId('/run/netns/side'), own, 'and has its own back');
  await run(['ip', 'netns', 'delete', 'side']);

  await rt.del(none, webAtt);
  await web.destroy();
});

test('the bridge list is a reference bridge configuration (and runs with netplumb-bridge once built)', async () => {
  const list = lists.get('netplumb-bridge')!;
  const dataDir = '/run/examples-ipam';
  const withStore = (l: NetworkConfigList, types: Record<string, string>): NetworkConfigList => ({
    ...l,
    plugins: l.plugins.map((p) => {
      const ipam = p.ipam as Record<string, unknown>;
      return { ...p, type: types[p.type] ?? p.type, ipam: { ...ipam, type: types[ipam.type as string] ?? ipam.type, dataDir } };
    }),
  });
  const variants: Array<[string, NetworkConfigList, string[]]> = [
    ['reference bridge + host-local', withStore(list, { 'netplumb-bridge': 'bridge', 'netplumb-host-local': 'host-local' }), [REFERENCE_BIN]],
  ];
  variants.push(['netplumb-bridge', withStore(list, {}), [NETPLUMB_BIN, REFERENCE_BIN]]);
  for (const [what, l, cniPath] of variants) {
    const rt = cniRuntime({ cniPath, host });
    const c = await host.createContainer(`br-${what.length}`);
    const att = {
      containerId: `br${what.length}`,
      netns: c.netnsPath,
      ifname: 'eth0',
      capabilityArgs: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] },
    };
    const r = await rt.add(l, att);
    assert.match(r.ips[0].address, /^10\.99\.0\.\d+\/24$/, what);
    const [br] = await host.ip<any[]>('addr', 'show', 'dev', 'netplumb0');
    assert.ok(
      br.addr_info.some((a: any) => a.local === '10.99.0.1'),
      `${what}: the gateway is on netplumb0`,
    );
    const gw = await c.exec(['ping', '-n', '-c', '1', '-W', '2', '10.99.0.1'], { check: false });
    assert.is(gw.exitCode, 0, `${what}: ${gw.stdout}`);
    await rt.check(l, att);
    await rt.del(l, att);
    await c.destroy();
  }
});

test.run();
