/**
 * The package as a user gets it: `npm pack` of a copy of this checkout (prepare builds it), the tarball's
 * contents checked, installed into a fresh project (offline: the tarball, and the dependencies this checkout has),
 * imported from ESM (one copy of each error class across `netplumb`, `netplumb/cni` and `netplumb/harness`) and
 * from strict TypeScript, a plugin run from node_modules/.bin as a runtime runs it (ADD and DEL of
 * netplumb-none in a harness container), with its code cache kept outside the package, and the CLI run from
 * node_modules/.bin. Nothing is written into the installed package.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sandboxed, createHost, run, type Host } from '../../netns-harness/index.js';

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
  const js = files.filter((f) => f.endsWith('.js') || f.endsWith('.cjs'));
  const withMaps = js.filter((f) => /sourceMappingURL=/.test(readFileSync(join(src, f), 'utf8')));
  assert.equal(withMaps, [], 'no source map references');
  const pkg = JSON.parse(readFileSync(join(src, 'package.json'), 'utf8'));
  for (const [name, file] of Object.entries<string>(pkg.bin)) assert.ok(files.includes(file), `bin ${name}: ${file} is packed`);
});

test('installed into a fresh project: ESM imports share one error family, strict TypeScript compiles', async () => {
  proj = join(work, 'proj');
  mkdirSync(proj);
  const typesNode = JSON.parse(readFileSync(join(REPO, 'node_modules/@types/node/package.json'), 'utf8')).version;
  writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', devDependencies: { '@types/node': typesNode } }));
  // The sandbox has no way out to the registry: the dependencies are the ones this checkout installed from it
  // (copies of the packages a consumer needs: the package's dependencies and @types/node, with theirs; npm keeps
  // them where they satisfy the package's ranges); the package itself comes from the tarball, offline.
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
  for (const dep of dependencyClosure([...Object.keys(pkg.dependencies), '@types/node'])) {
    cpSync(join(REPO, 'node_modules', dep), join(proj, 'node_modules', dep), { recursive: true, verbatimSymlinks: true });
  }
  await run(['npm', 'install', '--offline', '--no-audit', '--no-fund', tarball], { cwd: proj, timeoutMs: 300_000 });
  assert.ok(statSync(join(proj, 'node_modules/netplumb/dist/lib/index.bundle.js')).isFile(), 'installed from the tarball');
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
  assert.equal(listFiles(pkgDir), before, 'nothing written into the installed package');
  await c.destroy();
});

test.run();
