/**
 * The package as a user gets it: `npm pack` of a copy of this checkout (prepare builds it), the tarball's
 * contents checked, installed into a fresh project (offline: the tarball, and the dependencies this checkout has),
 * where its install step compiles the forwarder; imported from ESM (one copy of each error class across
 * `netplumb`, `netplumb/cni` and `netplumb/harness`) and from strict TypeScript, a plugin run from
 * node_modules/.bin as a runtime runs it (ADD and DEL of netplumb-none in a harness container: in process, and
 * through the package's own netplumbd with the same output), with its code cache kept outside the package, the
 * CLI run from node_modules/.bin, install-cni linking the forwarder. Nothing is written into the installed
 * package. Installed again with no `cc` in PATH: the install succeeds, says why there is no fast path, and
 * leaves the Node plugins; install-cni then compiles the forwarder once a compiler is there.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sandboxed, createHost, run, startAgentProcess, type Host } from '../../netns-harness/index.js';
import { eventsOf, socketPath } from '../fixtures/agent.js';

await sandboxed();

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
let work: string;
let proj: string;
let tarball: string;
let host: Host;

function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(`${relative(dir, p)} ${statSync(p).size} ${statSync(p).mtimeMs}`);
    }
  };
  walk(dir);
  return out.sort();
}

/**
 * The packages under this checkout's node_modules that `roots` need, with their own dependencies (a hoisted
 * layout: a dependency nested in a package's own node_modules is copied with that package).
 */
function dependencyClosure(roots: readonly string[]): string[] {
  const seen = new Set<string>();
  const visit = (name: string) => {
    if (seen.has(name)) return;
    let manifest: { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };
    try {
      manifest = JSON.parse(readFileSync(join(REPO, 'node_modules', name, 'package.json'), 'utf8'));
    } catch {
      return; // an optional dependency for another platform, never installed
    }
    seen.add(name);
    for (const d of Object.keys({ ...manifest.dependencies, ...manifest.optionalDependencies })) visit(d);
  };
  roots.forEach(visit);
  return [...seen].sort();
}

/** The first bytes of the file `path` resolves to. */
const magic = (path: string, n = 4) => readFileSync(path).subarray(0, n).toString('latin1');
const ELF = '\x7fELF';

/**
 * A fresh consumer project that allows netplumb's install script, with this checkout's dependencies (`bare`:
 * only those the package needs, which is all npm keeps: a cheaper copy, no TypeScript).
 */
function consumer(dir: string, { bare = false } = {}): void {
  mkdirSync(dir);
  const typesNode = JSON.parse(readFileSync(join(REPO, 'node_modules/@types/node/package.json'), 'utf8')).version;
  // allowScripts: what `npm install-scripts approve netplumb` writes (npm 11 lists unapproved install scripts)
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({
      name: 'consumer',
      private: true,
      type: 'module',
      allowScripts: { netplumb: true },
      ...(bare ? {} : { devDependencies: { '@types/node': typesNode } }),
    }),
  );
  // The sandbox has no way out to the registry: the dependencies are the ones this checkout installed from it
  // (copies of the packages a consumer needs: the package's dependencies, and @types/node with theirs unless
  // `bare`; npm keeps them where they satisfy the package's ranges); the package itself comes from the tarball.
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
  for (const dep of dependencyClosure([...Object.keys(pkg.dependencies), ...(bare ? [] : ['@types/node'])])) {
    cpSync(join(REPO, 'node_modules', dep), join(dir, 'node_modules', dep), { recursive: true, verbatimSymlinks: true });
  }
}

test.before(async () => {
  work = mkdtempSync(join(tmpdir(), 'netplumb-pack-'));
  host = await createHost('pkghost');
});
test.after(async () => {
  await host.destroy();
  rmSync(work, { recursive: true, force: true });
});

test('npm pack builds the package: executables, CLI, entries, LICENSE; no sources, maps or caches', async () => {
  const src = join(work, 'src');
  // a copy of the checkout, so that the build npm pack runs never touches the dist/ the other tests use
  cpSync(REPO, src, { recursive: true, filter: (p) => !/\/(node_modules|dist|\.git)$/.test(p) });
  symlinkSync(join(REPO, 'node_modules'), join(src, 'node_modules'));
  const r = await run(['npm', 'pack', '--json', '--pack-destination', work], { cwd: src, timeoutMs: 600_000 });
  const [info] = JSON.parse(r.stdout.slice(r.stdout.indexOf('[')));
  tarball = join(work, info.filename);
  const files: string[] = info.files.map((f: { path: string }) => f.path);
  for (const f of [
    'forwarder/netplumb-forward.c',
    'scripts/write-plugin-bins.mjs',
    'dist/plugins/netplumb-none',
    'LICENSE',
    'README.md',
    'package.json',
    'dist/bin/netplumb.js',
    'dist/lib/index.bundle.js',
    'dist/lib/index.d.ts',
    'dist/lib/cni/index.bundle.js',
    'dist/netns-harness/index.bundle.js',
    'dist/netns-harness/tcp-echo.js',
    'dist/plugins/netplumb-bridge.cjs',
    'dist/plugins/netplumb-bridge.bundle.cjs',
    'dist/plugins/netplumb-host-local.cjs',
  ]) {
    assert.ok(files.includes(f), `the tarball has ${f}`);
  }
  assert.equal(
    files.filter(
      (f) =>
        f.endsWith('.map') || f.endsWith('.cache') || (f.endsWith('.ts') && !f.endsWith('.d.ts')) || f.startsWith('dist/test') || f.startsWith('dist/bench'),
    ),
    [],
  );
  assert.not.ok(files.includes('dist/plugins/netplumb-forward'), 'no compiled forwarder: it is compiled where the package is installed');
  assert.match(
    readFileSync(join(src, 'dist/plugins/netplumb-none'), 'utf8'),
    /^#!.*\nimport\('\.\/netplumb-none\.cjs'\);\n$/,
    'the bin entry: the Node plugin',
  );
  const js = files.filter((f) => f.endsWith('.js') || f.endsWith('.cjs'));
  const withMaps = js.filter((f) => /sourceMappingURL=/.test(readFileSync(join(src, f), 'utf8')));
  assert.equal(withMaps, [], 'no source map references');
  const pkg = JSON.parse(readFileSync(join(src, 'package.json'), 'utf8'));
  for (const [name, file] of Object.entries<string>(pkg.bin)) assert.ok(files.includes(file), `bin ${name}: ${file} is packed`);
});

test('installed into a fresh project: ESM imports share one error family, strict TypeScript compiles', async () => {
  proj = join(work, 'proj');
  consumer(proj);
  await run(['npm', 'install', '--offline', '--no-audit', '--no-fund', tarball], { cwd: proj, timeoutMs: 300_000 });
  assert.ok(statSync(join(proj, 'node_modules/netplumb/dist/lib/index.bundle.js')).isFile(), 'installed from the tarball');
  for (const p of ['netplumb-bridge', 'netplumb-none', 'netplumb-overlay']) {
    const bin = join(proj, 'node_modules/.bin', p);
    assert.is(magic(bin), ELF, `${p} is the compiled forwarder`);
    assert.is(realpathSync(bin), join(proj, 'node_modules/netplumb/dist/plugins/netplumb-forward'));
  }
  writeFileSync(
    join(proj, 'check.mjs'),
    `
import * as lib from 'netplumb';
import * as cni from 'netplumb/cni';
import * as harness from 'netplumb/harness';
import { createRequire } from 'node:module';
const pkg = createRequire(import.meta.url)('netplumb/package.json');
const e = new cni.CniError(7, 'x');
console.log(JSON.stringify({ version: pkg.version, open: typeof lib.openHandle, run: typeof cni.runPlugin, sandboxed: typeof harness.sandboxed,
  family: e instanceof lib.NetplumbError, same: cni.NetplumbError === undefined || cni.NetplumbError === lib.NetplumbError }));
`,
  );
  const r = await run([process.execPath, 'check.mjs'], { cwd: proj });
  assert.equal(JSON.parse(r.stdout), { version: '0.1.0', open: 'function', run: 'function', sandboxed: 'function', family: true, same: true });

  writeFileSync(
    join(proj, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', noEmit: true, types: ['node'], skipLibCheck: false },
    }),
  );
  writeFileSync(
    join(proj, 'use.ts'),
    `
import { openHandle, listLinks, NetplumbError, type Link } from 'netplumb';
import { runPlugin, CniError, type CniPlugin, type CniResult } from 'netplumb/cni';
import { createHost, type Host } from 'netplumb/harness';
export async function names(): Promise<string[]> {
  const h = await openHandle();
  try { return (await listLinks(h)).map((l: Link) => l.name); } finally { h.close(); }
}
export const plugin: CniPlugin = {
  name: 'mine',
  add: async (): Promise<CniResult> => ({ cniVersion: '1.1.0' }),
  del: async () => {}, check: async () => {},
};
export const isOurs = (e: unknown): boolean => e instanceof NetplumbError || e instanceof CniError;
export type H = Host; export { runPlugin, createHost };
`,
  );
  const tsc = join(REPO, 'node_modules/typescript/bin/tsc');
  const t = await run([process.execPath, tsc, '-p', 'tsconfig.json'], { cwd: proj, check: false, timeoutMs: 300_000 });
  assert.is(t.exitCode, 0, t.stdout + t.stderr);
});

test('a plugin and the CLI from node_modules/.bin; the code cache goes to the cache dir, nothing into the package', async () => {
  const pkgDir = join(proj, 'node_modules/netplumb');
  const before = listFiles(pkgDir);
  const cache = join(work, 'cache');
  const bin = (n: string) => join(proj, 'node_modules/.bin', n);
  const c = await host.createContainer('pkgctr');
  const conf = JSON.stringify({ cniVersion: '1.1.0', name: 'none', type: 'netplumb-none' });
  const cniEnv = { CNI_CONTAINERID: 'pkg', CNI_NETNS: c.netnsPath, CNI_IFNAME: 'lo', CNI_PATH: join(proj, 'node_modules/.bin'), NETPLUMB_CACHE_DIR: cache };
  const add = await host.exec([bin('netplumb-none')], { env: { ...cniEnv, CNI_COMMAND: 'ADD' }, input: conf, check: false, cleanEnv: true });
  assert.is(add.exitCode, 0, add.stdout + add.stderr);
  assert.equal(
    JSON.parse(add.stdout).ips.map((i: { address: string }) => i.address),
    ['127.0.0.1/8', '::1/128'],
  );
  const [lo] = await c.ip<any[]>('link', 'show', 'dev', 'lo');
  assert.ok(lo.flags.includes('UP'), 'the kernel agrees');
  const del = await host.exec([bin('netplumb-none')], { env: { ...cniEnv, CNI_COMMAND: 'DEL' }, input: conf, check: false, cleanEnv: true });
  assert.is(del.exitCode, 0, del.stdout + del.stderr);
  // the same verbs through the package's own agent: served there, the same answer
  const agent = await startAgentProcess({ socket: socketPath(), netns: host.netnsPath, executable: bin('netplumbd') });
  try {
    const viaAgent = { ...cniEnv, NETPLUMB_AGENT_SOCKET: agent.socket };
    const add2 = await host.exec([bin('netplumb-none')], { env: { ...viaAgent, CNI_COMMAND: 'ADD' }, input: conf, check: false, cleanEnv: true });
    assert.is(add2.exitCode, 0, add2.stdout + add2.stderr);
    assert.is(add2.stdout, add.stdout, 'the output in process and through the agent');
    const del2 = await host.exec([bin('netplumb-none')], { env: { ...viaAgent, CNI_COMMAND: 'DEL' }, input: conf, check: false, cleanEnv: true });
    assert.is(del2.exitCode, 0, del2.stdout + del2.stderr);
    // (an answer is logged once sent: wait for the second line)
    const served = await eventsOf(agent, (e) => e.event === 'request' && e.plugin === 'netplumb-none' && e.container === 'pkg', 2);
    assert.equal(
      served.map((e) => [e.verb, e.outcome]),
      [
        ['ADD', 'ok'],
        ['DEL', 'ok'],
      ],
      agent.log(),
    );
  } finally {
    await agent.stop();
  }
  assert.ok(
    readdirSync(cache).some((f) => /^netplumb-none\.bundle\.cjs-[0-9a-f]{12}\.ADD\.cache$/.test(f)),
    `a code cache in ${cache}: ${readdirSync(cache)}`,
  );

  const v = await run([bin('netplumb'), '--version']);
  assert.is(v.stdout.trim(), '0.1.0');
  const state = join(work, 'state');
  const ls = await host.exec([bin('netplumb'), 'network', 'create', 'pk', '--subnet', '10.71.0.0/24', '--json'], {
    env: { NETPLUMB_STATE_DIR: state, NETPLUMB_NO_AGENT: '1' },
  });
  assert.is(JSON.parse(ls.stdout).bridge, 'np-pk');
  const conn = await host.exec([bin('netplumb'), 'connect', 'pk', String(c.pid), '--json'], {
    env: { NETPLUMB_STATE_DIR: state, NETPLUMB_NO_AGENT: '1', NETPLUMB_CACHE_DIR: cache },
  });
  assert.equal(JSON.parse(conn.stdout).addresses, ['10.71.0.2/24']);
  await host.exec([bin('netplumb'), 'network', 'rm', '-f', 'pk'], { env: { NETPLUMB_STATE_DIR: state, NETPLUMB_NO_AGENT: '1' } });
  const cniBin = join(work, 'cni-bin');
  const inst = await host.exec([bin('netplumb'), 'install-cni', '--dir', cniBin, '--json'], { env: { NETPLUMB_STATE_DIR: state, NETPLUMB_NO_AGENT: '1' } });
  assert.is(JSON.parse(inst.stdout).installed.length, 6);
  assert.is(realpathSync(join(cniBin, 'netplumb-bridge')), join(pkgDir, 'dist/plugins/netplumb-forward'), 'install-cni links the forwarder');
  await host.exec([bin('netplumb'), 'install-cni', '--uninstall'], { env: { NETPLUMB_STATE_DIR: state, NETPLUMB_NO_AGENT: '1' } });
  assert.equal(listFiles(pkgDir), before, 'nothing written into the installed package');
  await c.destroy();
});

test('installed with no C compiler in PATH: the install succeeds, says why in one line, and leaves the Node plugins', async () => {
  const bare = join(work, 'bare');
  consumer(bare, { bare: true });
  // PATH without cc: node, sh (npm's script shell) and npm only
  const path = join(work, 'no-cc-bin');
  mkdirSync(path);
  const npm = (process.env.PATH ?? '')
    .split(delimiter)
    .map((d) => join(d, 'npm'))
    .find((f) => existsSync(f));
  assert.ok(npm, 'npm in PATH');
  symlinkSync(process.execPath, join(path, 'node'));
  symlinkSync('/bin/sh', join(path, 'sh'));
  symlinkSync(realpathSync(npm!), join(path, 'npm'));
  const env = { PATH: path, HOME: process.env.HOME ?? '/root', CC: '' };
  const r = await run([join(path, 'npm'), 'install', '--offline', '--no-audit', '--no-fund', '--foreground-scripts', tarball], {
    cwd: bare,
    env,
    cleanEnv: true,
    check: false,
    timeoutMs: 300_000,
  });
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
  const said = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /fast path/.test(l));
  assert.equal(said, ['netplumb: the CNI fast path through netplumbd is unavailable: no C compiler (cc is not in PATH); the plugins run in Node']);
  const plugins = join(bare, 'node_modules/netplumb/dist/plugins');
  assert.not.ok(existsSync(join(plugins, 'netplumb-forward')));
  const bin = join(bare, 'node_modules/.bin/netplumb-none');
  assert.is(realpathSync(bin), join(plugins, 'netplumb-none.cjs'), 'the Node plugin');
  assert.is(magic(bin, 2), '#!');
  const v = await host.exec([bin], { env: { CNI_COMMAND: 'VERSION' }, input: '{"cniVersion":"1.0.0"}', cleanEnv: true });
  assert.ok(JSON.parse(v.stdout).supportedVersions.includes('1.1.0'), v.stdout);
  // install-cni runs the package's install step when it finds no forwarder: still no cc, then with one
  const cli = join(bare, 'node_modules/.bin/netplumb');
  const cniBin = join(work, 'bare-cni-bin');
  const cliEnv = { NETPLUMB_STATE_DIR: join(work, 'bare-state'), NETPLUMB_NO_AGENT: '1' };
  const without = await run([cli, 'install-cni', '--dir', cniBin, '--json'], { env: { ...cliEnv, PATH: path, CC: '' }, cleanEnv: true });
  assert.match(without.stderr, /fast path through netplumbd is unavailable: no C compiler/);
  assert.is(realpathSync(join(cniBin, 'netplumb-none')), join(plugins, 'netplumb-none.cjs'));
  await run([cli, 'install-cni', '--dir', cniBin, '--json'], { env: cliEnv });
  assert.is(realpathSync(join(cniBin, 'netplumb-none')), join(plugins, 'netplumb-forward'), 'compiled now, and linked');
  assert.is(magic(join(cniBin, 'netplumb-none')), ELF);
  await run([cli, 'install-cni', '--uninstall'], { env: cliEnv });
});

test.run();
