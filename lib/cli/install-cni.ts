/**
 * `netplumb install-cni`: puts netplumb's CNI plugins where runtimes look for them (symbolic links in --dir to
 * this package's executables, which stay where npm put them) and, with --conf-dir, a conflist for one network.
 * What it made is listed in a manifest (<state>/install-cni.json), so that `--uninstall` removes exactly that,
 * and only what still is netplumb's. Running it again changes nothing.
 */
import { lstatSync, readFileSync, readlinkSync, realpathSync, renameSync, rmSync, symlinkSync, mkdirSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { isSupportedVersion, SUPPORTED_VERSIONS } from '../cni/version.js';
import { bridgeConfig, checkNetworkName, createNetwork, readNetwork, removeNetwork, stateRoot } from '../networks/index.js';
import { makePrivateDir, writeJsonAtomic } from '../networks/store.js';
import { CliError, EXIT, printJson, progress } from './output.js';

export const PLUGINS = ['netplumb-bridge', 'netplumb-container', 'netplumb-host', 'netplumb-host-local', 'netplumb-none', 'netplumb-overlay'] as const;
const MODES = ['bridge', 'host', 'container', 'none'] as const;

/** This package's plugin executables (dist/plugins). */
export const pluginsDir = () => fileURLToPath(new URL('../../plugins/', import.meta.url));

/**
 * What a runtime should exec for plugin `p`: the file dist/plugins/p links to — the forwarder (it picks the
 * plugin by the name it is run as) or the Node plugin, as the build or the package's install step chose
 * (scripts/write-plugin-bins.mjs); when p is no link (a package whose install step never ran: its p is a
 * module importing p.cjs), the forwarder if there is one, else the Node plugin p.cjs itself.
 */
export function pluginExecutable(p: string): string | undefined {
  const dir = pluginsDir();
  const bin = join(dir, p);
  if (linkTarget(bin) !== undefined && existsSync(bin)) return realpathSync(bin);
  for (const f of [join(dir, 'netplumb-forward'), join(dir, `${p}.cjs`), bin]) if (existsSync(f)) return realpathSync(f);
  return undefined;
}

/**
 * The package's install step (`scripts/write-plugin-bins.mjs --install`: compiles the forwarder with the system's
 * `cc`), when its forwarder is missing: npm skipped install scripts (`--ignore-scripts`, a package denied in
 * `allowScripts`), or a C compiler came later. Returns the line it printed when there is still no fast path.
 */
async function ensureForwarder(): Promise<string | undefined> {
  if (existsSync(join(pluginsDir(), 'netplumb-forward'))) return undefined;
  const script = fileURLToPath(new URL('../../../scripts/write-plugin-bins.mjs', import.meta.url));
  if (!existsSync(script)) return `netplumb: the CNI fast path through netplumbd is unavailable: no forwarder, and no ${script} to compile one`;
  const { execa } = await import('execa');
  const r = await execa(process.execPath, [script, '--install'], { reject: false });
  return r.stderr.trim() || undefined;
}

interface Manifest {
  links: Array<{ path: string; target: string }>;
  files: string[];
  /** networks install-cni defined for its conflist */
  networks?: string[];
}

const manifestPath = () => join(stateRoot(), 'install-cni.json');

function readManifest(): Manifest {
  try {
    return JSON.parse(readFileSync(manifestPath(), 'utf8')) as Manifest;
  } catch {
    return { links: [], files: [] };
  }
}

function linkTarget(p: string): string | undefined {
  try {
    return lstatSync(p).isSymbolicLink() ? readlinkSync(p) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The conflist for `--mode`. Bridge mode uses the network defined by `netplumb network create NAME`, defining it
 * (with --subnet, or the first free one) when there is none; such a definition is install-cni's, and goes with --uninstall.
 */
function conflist(
  name: string,
  mode: (typeof MODES)[number],
  o: { subnet?: string; container?: string; cniVersion: string },
  m: Manifest,
): Record<string, unknown> {
  let plugin: Record<string, unknown>;
  if (mode === 'bridge') {
    let net = readNetwork(name);
    if (!net) {
      net = createNetwork({ name, ...(o.subnet ? { subnet: o.subnet } : {}) });
      m.networks = [...(m.networks ?? []), name];
    }
    const { cniVersion: _v, name: _n, ...rest } = bridgeConfig(net);
    plugin = rest;
  } else if (mode === 'container') {
    if (!o.container) throw new CliError('--mode container needs --container TARGET (the container to join)', EXIT.USAGE);
    plugin = { type: 'netplumb-container', container: o.container };
  } else plugin = { type: `netplumb-${mode}` };
  return { cniVersion: o.cniVersion, name, plugins: [plugin] };
}

export function addInstallCniCommand(program: Command): void {
  program
    .command('install-cni')
    .description('install the CNI plugins into --dir (links to this package) and optionally a conflist; --uninstall removes exactly that')
    .option('--dir <dir>', 'where runtimes look for plugins', '/opt/cni/bin')
    .option('--conf-dir <dir>', 'write a conflist here too (e.g. /etc/cni/net.d)')
    .option('--network <name>', "the conflist's network name (with --conf-dir)", 'netplumb')
    .option('--mode <mode>', `the conflist's mode: ${MODES.join(' | ')}`, 'bridge')
    .option('--subnet <cidr>', 'bridge mode, for a network not defined with `netplumb network create`')
    .option('--container <target>', 'container mode: the container to join')
    // libcni before 1.2 (podman 4, containerd 1.6/1.7: Debian 12's) cannot parse a 1.1.0 result and fails every ADD
    .option('--cni-version <version>', "the conflist's cniVersion (1.1.0 adds STATUS and GC, for runtimes that read it)", '1.0.0')
    .option('--force', "replace files of the same names that are not netplumb's")
    .option('--uninstall', 'remove what install-cni installed')
    .option('--json', 'print what was done as JSON')
    .action(async (o) => {
      if (!o.uninstall) {
        const why = await ensureForwarder();
        if (why) process.stderr.write(`${why}\n`);
      }
      const r = o.uninstall ? await uninstall() : install(o);
      if (o.json) printJson(r);
      else for (const [what, list] of Object.entries(r)) for (const f of list as string[]) process.stdout.write(`${what} ${f}\n`);
    });
}

function install(o: {
  dir: string;
  confDir?: string;
  network: string;
  mode: string;
  subnet?: string;
  container?: string;
  cniVersion: string;
  force?: boolean;
}) {
  if (!MODES.includes(o.mode as (typeof MODES)[number])) throw new CliError(`--mode ${o.mode}: use ${MODES.join(', ')}`, EXIT.USAGE);
  if (!isSupportedVersion(o.cniVersion)) throw new CliError(`--cni-version ${o.cniVersion}: use one of ${SUPPORTED_VERSIONS.join(', ')}`, EXIT.USAGE);
  const dir = resolve(o.dir);
  const missing = PLUGINS.filter((p) => pluginExecutable(p) === undefined);
  if (missing.length) throw new CliError(`this package has no ${missing.join(', ')} in ${pluginsDir()}: build it (npm run build)`, EXIT.FAILED);
  const m = readManifest();
  const conf = o.confDir ? conflist(checkNetworkName(o.network), o.mode as (typeof MODES)[number], o, m) : undefined;
  const done = { installed: [] as string[], unchanged: [] as string[] };
  const bar = progress('installing CNI plugins');
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    for (const [i, p] of PLUGINS.entries()) {
      const path = join(dir, p);
      const target = pluginExecutable(p)!;
      const cur = linkTarget(path);
      if (cur === target) done.unchanged.push(path);
      else {
        if (existsSync(path) || cur !== undefined) {
          const ours = m.links.some((l) => l.path === path && l.target === cur);
          if (!ours && !o.force) throw new CliError(`${path} exists and is not netplumb's: remove it, or use --force`, EXIT.CONFLICT);
        }
        const tmp = `${path}.${process.pid}.tmp`;
        rmSync(tmp, { force: true });
        symlinkSync(target, tmp);
        renameSync(tmp, path);
        done.installed.push(path);
      }
      m.links = [...m.links.filter((l) => l.path !== path), { path, target }];
      bar.step(i + 1, PLUGINS.length);
    }
    if (conf && o.confDir) {
      mkdirSync(o.confDir, { recursive: true, mode: 0o755 });
      const file = join(resolve(o.confDir), `50-${o.network}.conflist`);
      const text = `${JSON.stringify(conf, null, 2)}\n`;
      let same = false;
      try {
        same = readFileSync(file, 'utf8') === text;
      } catch {
        /* absent */
      }
      if (same) done.unchanged.push(file);
      else {
        if (existsSync(file) && !m.files.includes(file) && !o.force)
          throw new CliError(`${file} exists and is not netplumb's: remove it, or use --force`, EXIT.CONFLICT);
        writeJsonAtomic(file, conf);
        done.installed.push(file);
      }
      if (!m.files.includes(file)) m.files.push(file);
    }
  } finally {
    bar.end();
    makePrivateDir(stateRoot());
    writeJsonAtomic(manifestPath(), m);
  }
  return done;
}

async function uninstall() {
  const m = readManifest();
  const done = { removed: [] as string[], kept: [] as string[] };
  for (const l of m.links) {
    if (linkTarget(l.path) === l.target) {
      rmSync(l.path);
      done.removed.push(l.path);
    } else if (existsSync(l.path)) done.kept.push(l.path); // replaced since: not ours any more
  }
  for (const f of m.files) {
    if (existsSync(f)) {
      rmSync(f);
      done.removed.push(f);
    }
  }
  for (const n of m.networks ?? []) {
    if (readNetwork(n)) {
      await removeNetwork(n, { force: true });
      done.removed.push(`network ${n}`);
    }
  }
  rmSync(manifestPath(), { force: true });
  return done;
}
