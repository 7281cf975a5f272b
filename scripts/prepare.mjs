#!/usr/bin/env node
// Makes a fresh Debian machine ready for `npm run demo` / `npm test`: system packages (as root, with
// apt-get), node_modules (npm ci), and the build. Plain JavaScript with no dependencies, because it runs
// before node_modules exists. Usage: node scripts/prepare.mjs demo|overlay|test|bench
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';

const profile = process.argv[2] ?? 'test';
const root = new URL('..', import.meta.url).pathname;

// what must be present → the Debian package that provides it
const base = { ip: 'iproute2', ping: 'iputils-ping', nsenter: 'util-linux', setpriv: 'util-linux', nft: 'nftables' };
const forAgent = { cc: 'gcc', '/usr/include/stdio.h': 'libc6-dev' };
// etcd-server installs under policy-rc.d (below): the overlay's tests and demo start their own, sandboxed
const etcd = { '/usr/bin/etcd': 'etcd-server' };
const needs = {
  demo: base,
  overlay: { ...base, ...etcd },
  test: {
    ...base,
    ...forAgent,
    ...etcd,
    iptables: 'iptables',
    capsh: 'libcap2-bin',
    arping: 'arping',
    '/usr/lib/cni/bridge': 'containernetworking-plugins',
    'rsvg-convert': 'librsvg2-bin',
    // the overlay's TLS test makes its CA and certificates (Priority optional: not on every fresh Debian)
    '/usr/bin/openssl': 'openssl',
  },
  bench: {
    ...base,
    ...forAgent,
    ...etcd,
    iptables: 'iptables',
    '/usr/lib/cni/bridge': 'containernetworking-plugins',
    '/usr/bin/python3': 'python3-pyroute2',
    iperf3: 'iperf3',
  },
}[profile];
if (!needs) throw new Error(`unknown profile ${profile}`);

const have = (cmd) => (cmd.startsWith('/') ? existsSync(cmd) : spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { stdio: 'ignore' }).status === 0);
const pyroute2 = () => spawnSync('/usr/bin/python3', ['-c', 'import pyroute2'], { stdio: 'ignore' }).status === 0;

const missing = new Set(
  Object.entries(needs)
    .filter(([cmd]) => !have(cmd))
    .map(([, pkg]) => pkg),
);
if (profile === 'bench' && !pyroute2()) missing.add('python3-pyroute2');
if (missing.size) {
  const pkgs = [...missing];
  if (process.getuid() === 0 && have('apt-get')) {
    console.error(`prepare: installing ${pkgs.join(' ')}`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    // Packages that bring a service (etcd-server, containerd, docker.io) must not start it in the machine's own
    // namespaces: the tests start their own, sandboxed. policy-rc.d answering 101 forbids it while they install.
    const policy = '/usr/sbin/policy-rc.d';
    const ours = !existsSync(policy);
    if (ours) writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
    try {
      execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], { stdio: 'inherit', env });
    } finally {
      if (ours) rmSync(policy, { force: true });
    }
  } else {
    console.error(`prepare: missing ${pkgs.join(' ')}; install them (apt-get install ${pkgs.join(' ')}) and run again`);
    process.exit(1);
  }
}
if (!existsSync(`${root}/node_modules/.package-lock.json`)) {
  console.error('prepare: npm ci');
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
}
// Build only when a source is newer than the last build (tsc takes seconds; `npm run walkthrough` should not).
const stamp = `${root}/dist/.built`;
const newest = (path) => {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(st.mtimeMs, ...readdirSync(path).map((n) => newest(`${path}/${n}`)));
};
const sources = ['lib', 'plugins', 'netns-harness', 'test', 'examples', 'bench', 'tsconfig.json', 'package-lock.json', 'scripts/write-plugin-bins.mjs'];
const built = existsSync(stamp) ? statSync(stamp).mtimeMs : 0;
if (sources.some((s) => existsSync(`${root}/${s}`) && newest(`${root}/${s}`) > built)) {
  execFileSync(process.execPath, [`${root}/node_modules/typescript/bin/tsc`, '-p', root], { stdio: 'inherit' });
  execFileSync(process.execPath, [`${root}/scripts/write-plugin-bins.mjs`], { stdio: 'inherit' }); // writes the stamp
}
