/**
 * `netplumb install-cni` for a real runtime: the built CLI (dist/bin/netplumb.js) fills a CNI bin directory and a
 * configuration directory, podman 4.3 (CNI backend, in a harness host, see podmanIn) runs two containers on that
 * network with nothing else of netplumb's in its directories; they reach their gateway and each other.
 * `install-cni --uninstall` then removes exactly what it made: the directories hold what they held before, the
 * bridge and the network it defined are gone, and the machine's /opt/cni/bin and /etc/cni/net.d are untouched.
 * Skipped without podman.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sandboxed, createHost, ping, run, type Host, type RunResult } from '../../netns-harness/index.js';
import { ensurePluginBins, treeSnapshot } from '../fixtures/cni-runtime.js';
import { vethNames } from '../fixtures/bridge-lab.js';
import { busyboxRootfs, podmanIn, rootfsTar, skipUnlessInstalled, tcpFetch, type Podman } from '../fixtures/runtimes.js';

skipUnlessInstalled(['podman', 'conmon', '/usr/sbin/runc', '/bin/busybox', '/usr/lib/cni/loopback'], 'podman runc busybox-static containernetworking-plugins');

await sandboxed();
ensurePluginBins();

const NETPLUMB = fileURLToPath(new URL('../../bin/netplumb.js', import.meta.url));
const tmp = mkdtempSync('/run/np-podinst-');
const bin = join(tmp, 'cni-bin');
const conf = join(tmp, 'net.d');
const state = join(tmp, 'state');
const NETWORK = 'instnet';
const SUBNET = '10.91.0.0/24';
const GATEWAY = '10.91.0.1';
const IMAGE = 'netplumb.test/busybox:install-cni';
/** the machine's own CNI directories: install-cni with --dir and --conf-dir must not touch them */
const MACHINE_DIRS = ['/opt/cni/bin', '/etc/cni/net.d'];
let host: Host;
let podman: Podman;

const machineDirs = () => MACHINE_DIRS.map((d) => (existsSync(d) ? treeSnapshot(d) : 'absent'));
const before = machineDirs();

/** `netplumb ARGS --json` in the host, as root without an agent; its JSON. */
async function netplumb(args: string[]): Promise<any> {
  const r: RunResult = await host.exec([process.execPath, NETPLUMB, ...args, '--json'], {
    env: { NETPLUMB_STATE_DIR: state, NETPLUMB_NO_AGENT: '1' },
    check: false,
    timeoutMs: 60_000,
  });
  assert.is(r.exitCode, 0, `netplumb ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

test.before(async () => {
  host = await createHost('podinst');
  // what was in the directories before: a plugin of someone else's (podman needs loopback), a foreign conflist
  mkdirSync(bin);
  mkdirSync(conf);
  symlinkSync('/usr/lib/cni/loopback', join(bin, 'loopback'));
  writeFileSync(join(conf, '99-other.conf.disabled'), 'not a conflist\n');
  podman = podmanIn(host, tmp, { cniBinDir: bin, cniConfDir: conf });
  await podman(['import', '--change', 'CMD ["sh"]', await rootfsTar(busyboxRootfs(join(tmp, 'rootfs')), join(tmp, 'rootfs.tar')), IMAGE]);
});

test.after(async () => {
  if (host) {
    await podman(['rm', '-f', '-a'], false);
    await run([process.execPath, NETPLUMB, 'install-cni', '--uninstall'], {
      netns: host.netnsPath,
      env: { NETPLUMB_STATE_DIR: state, NETPLUMB_NO_AGENT: '1' },
      check: false,
    });
    await host.destroy();
  }
  try {
    rmSync(tmp, { recursive: true, force: true });
  } catch {
    /* a mount left by a failure: /run is the sandbox's own tmpfs */
  }
});

const inspect = async (name: string, format: string) => (await podman(['inspect', '-f', format, name])).stdout.trim();

test('install-cni fills the directories podman uses; two containers reach the gateway and each other; --uninstall removes exactly that', async () => {
  const binBefore = readdirSync(bin).sort();
  const confBefore = readdirSync(conf).sort();
  const installed = await netplumb(['install-cni', '--dir', bin, '--conf-dir', conf, '--network', NETWORK, '--mode', 'bridge', '--subnet', SUBNET]);
  const file = join(conf, `50-${NETWORK}.conflist`);
  assert.equal(
    installed.installed.sort(),
    [
      ...['netplumb-bridge', 'netplumb-container', 'netplumb-host', 'netplumb-host-local', 'netplumb-none', 'netplumb-overlay'].map((p) => join(bin, p)),
      file,
    ].sort(),
  );
  for (const p of installed.installed.filter((f: string) => f.startsWith(bin))) assert.ok(lstatSync(p).isSymbolicLink(), p);
  const list = JSON.parse(readFileSync(file, 'utf8'));
  assert.is(list.plugins[0].type, 'netplumb-bridge');
  assert.is(list.cniVersion, '1.0.0', 'a version the libcni of podman 4 reads results of');

  const server = ['nc', '-ll', '-p', '80', '-e', 'hostname'];
  await podman(['run', '-d', '--name', 'i1', '--hostname', 'i1', '--network', NETWORK, IMAGE, ...server]);
  await podman(['run', '-d', '--name', 'i2', '--hostname', 'i2', '--network', NETWORK, IMAGE, ...server]);
  const ip1 = await inspect('i1', `{{(index .NetworkSettings.Networks "${NETWORK}").IPAddress}}`);
  assert.match(ip1, /^10\.91\.0\.\d+$/);
  const netns2 = await inspect('i2', '{{.NetworkSettings.SandboxKey}}');
  const c2 = { netnsPath: netns2, exec: (argv: string[], o: object = {}) => run(argv, { ...o, netns: netns2 }) };
  assert.ok((await ping(c2 as never, GATEWAY, { count: 2, interval: 0.2 })).ok, 'i2 reaches its gateway');
  assert.is(await tcpFetch(netns2, ip1, 80), 'i1', 'i2 reaches i1');
  const bridge = (await netplumb(['network', 'inspect', NETWORK]))[0]?.bridge;
  assert.ok(bridge, 'install-cni defined the network');
  assert.ok(
    (await host.ip<any[]>('link', 'show')).some((l) => l.ifname === bridge),
    `the bridge ${bridge} carries them`,
  );

  await podman(['rm', '-f', 'i1', 'i2']);
  assert.equal(await vethNames(host), [], 'no veth left');
  const gone = await netplumb(['install-cni', '--uninstall']);
  assert.equal(gone.removed.sort(), [...installed.installed, `network ${NETWORK}`].sort(), 'exactly what it installed');
  assert.equal(readdirSync(bin).sort(), binBefore, 'the bin directory holds what it held');
  assert.equal(readdirSync(conf).sort(), confBefore, 'the configuration directory holds what it held');
  assert.not.ok(
    (await host.ip<any[]>('link', 'show')).some((l) => l.ifname === bridge),
    'the bridge is gone',
  );
  assert.equal(await netplumb(['network', 'ls']), [], 'no network left');
  assert.not.ok(existsSync(join(state, 'install-cni.json')), 'no manifest left');
  assert.equal(machineDirs(), before, "the machine's /opt/cni/bin and /etc/cni/net.d are untouched");
});

test.run();
