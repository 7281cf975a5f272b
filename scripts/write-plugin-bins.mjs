// After tsc: bundle the library's entry (writeLibraryBundle, below), and turn each dist/plugins/netplumb-*.js into an executable without extension (layout: writePluginBins), so that
// CNI_PATH=<repo>/dist/plugins finds `netplumb-bridge` etc. the way a runtime looks plugins up.
//
// With esbuild (a devDependency) each plugin is bundled into one CommonJS file, dist/plugins/netplumb-X.bundle.cjs
// (koffi, netlink and execa stay outside: native code, and execa is loaded only when a plugin execs another —
// from dist/plugins/execa.bundle.cjs, execa alone bundled into CommonJS, when the loader finds it).
// netplumb-X.cjs is a small loader that compiles the bundle with V8's code cache (one cache file per CNI verb,
// netplumb-X.bundle.cjs.<VERB>.cache, written by the first run of that verb that finds none or a stale one, if
// the directory is writable). A Node plugin is a fresh process for every verb: one file instead of some forty ES
// modules saves about 20 ms a process, the code cache a few more (bench/bridge.bench.ts; docs/BRIDGE.md). Without
// esbuild, netplumb-X.cjs is the two-line wrapper `import('./netplumb-X.js')`.
//
// netplumb-X itself, what a runtime execs, is a symlink to netplumb-forward, a small C program compiled here from
// forwarder/netplumb-forward.c: it hands the request to netplumbd when one answers on its socket, and otherwise
// execs netplumb-X.cjs (docs/AGENT.md). Without a C compiler, netplumb-X is a symlink to netplumb-X.cjs.
//
// A package (`--package`) ships no compiled code and no symlinks: netplumb-X is a two-line ES module importing
// netplumb-X.cjs, the package's `bin` entry. Installing the package runs this script with `--install` (the
// package's `install` script, as node-gyp packages compile theirs): it compiles the forwarder on the machine it
// runs on and makes each netplumb-X the layout above — or, with no C compiler, a symlink to netplumb-X.cjs,
// saying in one line why there is no fast path. It never fails the install.
//
// The shebangs drop NODE_EXTRA_CA_CERTS: with it set, Node parses the CA bundle while starting (about 30 ms
// of a ~45 ms start here), and a plugin never opens a TLS connection.
//
// Every file is written under a temporary name and renamed, so a plugin being executed meanwhile (tests run
// this concurrently) is never seen half written. `--if-stale` skips the work when every bundle is newer than
// every compiled file it could contain.
import {
  chmodSync,
  existsSync,
  lstatSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = fileURLToPath(new URL('../dist/', import.meta.url));
const SHEBANG = '#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node';
const dir = join(dist, 'plugins');
// Unique per run: test files run this concurrently, each in a PID namespace of its own where the PIDs repeat.
const RUN_TAG = `${process.pid}.${createHash('sha256').update(`${process.hrtime.bigint()}${Math.random()}`).digest('hex').slice(0, 8)}`;
const tmp = (p) => `${p}.${RUN_TAG}.tmp`;

// The newest compiled module under `d`, leaving out what this script writes there (bundles and their chunks).
function newestJs(d, except) {
  let newest = 0;
  for (const e of readdirSync(d, { withFileTypes: true })) {
    const p = join(d, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'chunks' && !e.name.startsWith('.')) newest = Math.max(newest, newestJs(p, except));
    } else if (e.name.endsWith('.js') && !e.name.endsWith('.bundle.js') && p !== except) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

function loadEsbuild() {
  try {
    return createRequire(import.meta.url)('esbuild');
  } catch {
    return undefined;
  }
}

function replace(path, write) {
  const t = tmp(path);
  write(t);
  renameSync(t, path);
}

function wrapper(bin, js) {
  // import() works both in a .cjs file and in an extensionless one (ESM in this "type": "module" package)
  const body = `${SHEBANG}\nimport('./${js}');\n`;
  if (existsSync(bin) && !lstatSync(bin).isSymbolicLink() && readFileSync(bin, 'utf8') === body) return;
  replace(bin, (t) => {
    writeFileSync(t, body);
    chmodSync(t, 0o755);
  });
}

// The loader: compiles the bundle as Node's CommonJS loader would (same wrapper, same require), with V8's code
// cache for this verb when there is a valid one, and leaves a fresh cache behind when there was none. Dynamic
// import() in the bundle (execa) goes through __netplumbImport, below.
const BUNDLE_MARK = '// netplumb plugin loader';
const LOADER = `${SHEBANG}
${BUNDLE_MARK}
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const Module = require('node:module');
const file = path.join(__dirname, BUNDLE);
const verb = /^[A-Z]+$/.test(process.env.CNI_COMMAND ?? '') ? process.env.CNI_COMMAND : 'other';
const cacheDir = CACHE_DIR;
const cacheFile = cacheDir === undefined ? undefined : path.join(cacheDir, \`\${path.basename(file)}\${CACHE_TAG}.\${verb}.cache\`);
let cachedData;
try {
  if (cacheFile !== undefined) cachedData = fs.readFileSync(cacheFile);
} catch {}
const script = new vm.Script(Module.wrap(fs.readFileSync(file, 'utf8')), {
  filename: file,
  cachedData,
});
if (cacheFile !== undefined && (cachedData === undefined || script.cachedDataRejected)) {
  process.once('exit', () => {
    try {
      fs.mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
      const tmp = \`\${cacheFile}.\${process.pid}.tmp\`;
      fs.writeFileSync(tmp, script.createCachedData());
      fs.renameSync(tmp, cacheFile);
    } catch {}
  });
}
// import() does not work in a vm.Script without --experimental-vm-modules: the bundle's import('execa') calls this.
// execa comes from its CommonJS bundle next to the plugins when the build made one: one file loads in ~20 ms,
// execa's ~100 ES modules in 60–80 (a delegated IPAM pays it on every ADD and DEL).
globalThis.__netplumbImport = (specifier) => {
  const bundled = specifier === 'execa' ? path.join(__dirname, 'execa.bundle.cjs') : undefined;
  if (bundled !== undefined && fs.existsSync(bundled)) return Promise.resolve().then(() => require(bundled));
  return import(specifier);
};
const m = new Module(file, module);
m.filename = file;
m.paths = Module._nodeModulePaths(path.dirname(file));
script.runInThisContext().call(m.exports, m.exports, (id) => m.require(id), m, file, path.dirname(file));
`;

// Where the loader keeps V8's code caches. A checkout (`npm run build`): beside the bundle, as the tests and
// benchmarks expect. A package (`--package`, run by prepack): never in the package's own directory, which may
// be read-only or shared (node_modules, /opt/cni/bin links to it): $NETPLUMB_CACHE_DIR, else
// $XDG_CACHE_HOME/netplumb, else /var/cache/netplumb for root and ~/.cache/netplumb for others; the file names
// carry a hash of the bundle, so two installed versions never take each other's caches.
const PACKAGE_BUILD = process.argv.includes('--package');
const PACKAGE_CACHE_DIR = `process.env.NETPLUMB_CACHE_DIR || (process.env.XDG_CACHE_HOME ? path.join(process.env.XDG_CACHE_HOME, 'netplumb') : process.getuid() === 0 ? '/var/cache/netplumb' : process.env.HOME ? path.join(process.env.HOME, '.cache', 'netplumb') : undefined)`;

function loaderText(name, bundle) {
  const tag = PACKAGE_BUILD ? `-${createHash('sha256').update(readFileSync(bundle)).digest('hex').slice(0, 12)}` : '';
  return LOADER.replace('BUNDLE', JSON.stringify(`${name}.bundle.cjs`))
    .replace('CACHE_DIR', PACKAGE_BUILD ? PACKAGE_CACHE_DIR : '__dirname')
    .replace('CACHE_TAG', JSON.stringify(tag));
}

// The bundle runs inside the loader's vm.Script, where import() fails on Node 20: dynamic imports of the
// external packages go through a function the loader defines instead.
const IMPORT_SHIM = {
  name: 'netplumb-import-shim',
  setup(build) {
    build.onLoad({ filter: /\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const re = /\bimport\((['"])(execa)\1\)/g;
      if (!re.test(text)) return undefined;
      // (run outside the loader, the bundle is a plain CommonJS module, where import() works)
      return { contents: text.replace(re, '(globalThis.__netplumbImport ?? ((s) => import(s)))("$2")'), loader: 'js' };
    });
  },
};

/**
 * Bundles with esbuild into `out` (through a temporary file, renamed only on success). Resolves with undefined
 * when the bundle was written, else with esbuild's complaints: any error or warning means it could not bundle
 * faithfully (import.meta, top-level await in CommonJS…), and nothing is written.
 */
async function bundleTo(esbuild, out, options) {
  const t = tmp(out);
  let r;
  try {
    r = await esbuild.build({ ...options, outfile: t, bundle: true, platform: 'node', target: 'node20', logLevel: 'silent', write: true });
  } catch (e) {
    r = { errors: e.errors ?? [{ text: e.message }], warnings: [] };
  }
  if (r.errors.length === 0 && r.warnings.length === 0) {
    renameSync(t, out);
    return undefined;
  }
  try {
    unlinkSync(t);
  } catch {
    /* not written */
  }
  return [...r.errors, ...r.warnings].map((m) => m.text).join('; ');
}

/**
 * The package's entries as ES modules bundled together with code splitting: dist/lib/index.bundle.js (the library,
 * `exports["."]`), dist/lib/cni/index.bundle.js (the plugin-writing API, `./cni`) and
 * dist/netns-harness/index.bundle.js (`./harness`), sharing their common modules through chunks in
 * dist/lib/chunks/ — so each error class exists once whichever entries a program imports (no `instanceof`
 * surprises), and no module is in two bundles. (koffi, netlink, execa, ip-cidr stay outside: native code or
 * loaded late.) A program that imports `netplumb` then loads a few files instead of some thirty: about 5 ms less
 * per fresh process here (the ESM loader resolves, reads and links each file; bench/links.bench.ts, docs/NET.md).
 * The unbundled modules stay for the plugins' bundles, the CLI, the tests and the types. Without esbuild, or if
 * esbuild cannot bundle faithfully, each entry re-exports its unbundled module.
 */
export async function writeLibraryBundle({ ifStale = false } = {}) {
  const entries = [
    ['lib/index', './index.js'],
    ['lib/cni/index', './index.js'],
    ['netns-harness/index', './index.js'],
  ].filter(([e]) => existsSync(join(dist, `${e}.js`)));
  if (entries.length === 0) return undefined;
  const out = join(dist, 'lib', 'index.bundle.js');
  const esbuild = loadEsbuild();
  if (ifStale && existsSync(out) && statSync(out).mtimeMs > newestJs(join(dist, 'lib'), out)) return 'library: up to date';
  if (esbuild) {
    const tmpDir = join(dist, `.bundles.${RUN_TAG}.tmp`);
    let r;
    try {
      r = await esbuild.build({
        entryPoints: Object.fromEntries(entries.map(([e]) => [`${e}.bundle`, join(dist, `${e}.js`)])),
        outdir: tmpDir,
        outbase: dist,
        splitting: true,
        chunkNames: 'lib/chunks/[name]-[hash]',
        bundle: true,
        format: 'esm',
        platform: 'node',
        target: 'node20',
        logLevel: 'silent',
        write: true,
        external: ['koffi', 'netlink', 'execa', 'ip-cidr'],
      });
    } catch (e) {
      r = { errors: e.errors ?? [{ text: e.message }], warnings: [] };
    }
    if (r.errors.length === 0 && r.warnings.length === 0) {
      const chunks = join(dist, 'lib', 'chunks');
      rmSync(chunks, { recursive: true, force: true });
      renameSync(join(tmpDir, 'lib', 'chunks'), chunks);
      for (const [e] of entries) renameSync(join(tmpDir, `${e}.bundle.js`), join(dist, `${e}.bundle.js`));
      rmSync(tmpDir, { recursive: true, force: true });
      return 'library: bundles index, cni and harness with shared chunks';
    }
    rmSync(tmpDir, { recursive: true, force: true });
  }
  for (const [e, rel] of entries) {
    replace(join(dist, `${e}.bundle.js`), (t) =>
      writeFileSync(t, `// esbuild was not available at build time: the unbundled entry.\nexport * from '${rel}';\n`),
    );
  }
  return 'library: re-exports of the unbundled entries';
}

/**
 * dist/plugins/execa.bundle.cjs: execa and its dependencies as one CommonJS file, for the plugins' loader
 * (above). Removed when esbuild is missing or cannot bundle it faithfully; the loader then imports execa.
 */
async function writeExecaBundle(esbuild, { ifStale = false } = {}) {
  const out = join(dir, 'execa.bundle.cjs');
  const require = createRequire(import.meta.url);
  let entry; // execa's exports map hides its package.json: its entry stands for the installed version
  try {
    entry = require.resolve('execa');
  } catch {
    return undefined;
  }
  if (ifStale && existsSync(out) && statSync(out).mtimeMs > statSync(entry).mtimeMs) return 'execa: up to date';
  const stdin = { contents: "module.exports = require('execa');", resolveDir: dirname(entry), loader: 'js' };
  if (esbuild && (await bundleTo(esbuild, out, { stdin, format: 'cjs' })) === undefined) return 'execa: bundle execa.bundle.cjs';
  try {
    unlinkSync(out);
  } catch {
    /* none */
  }
  return 'execa: imported as ES modules';
}

const FORWARDER_SRC = fileURLToPath(new URL('../forwarder/netplumb-forward.c', import.meta.url));
const FORWARDER = join(dir, 'netplumb-forward');

/**
 * dist/plugins/netplumb-forward, compiled from forwarder/netplumb-forward.c with the system's `cc` (or $CC): the
 * program a runtime execs for every netplumb plugin (netplumb-X is a symlink to it; it picks the plugin by the
 * name it was run as), which hands the request to netplumbd or, with no agent, execs the Node plugin
 * netplumb-X.cjs. Returns undefined when it is there, else why not (no C compiler, the compiler's complaint):
 * each netplumb-X then points at its Node plugin directly.
 */
function writeForwarder({ ifStale = false } = {}) {
  if (!existsSync(FORWARDER_SRC)) return `${FORWARDER_SRC} is missing`;
  if (ifStale && existsSync(FORWARDER) && statSync(FORWARDER).mtimeMs > statSync(FORWARDER_SRC).mtimeMs) return undefined;
  const cc = process.env.CC || 'cc';
  const t = tmp(FORWARDER);
  const r = spawnSync(cc, ['-O2', '-Wall', '-o', t, FORWARDER_SRC], { encoding: 'utf8' });
  if (r.status === 0) {
    renameSync(t, FORWARDER);
    return undefined;
  }
  try {
    unlinkSync(t);
  } catch {
    /* not written */
  }
  if (r.error?.code === 'ENOENT') return `no C compiler (${cc} is not in PATH)`;
  const lines = (r.stderr ?? '').trim().split('\n');
  const said = lines.find((l) => /error/i.test(l)) ?? lines[0];
  return `${cc} could not compile ${FORWARDER_SRC}: ${r.error ? r.error.message : said || `exit status ${r.status}`}`;
}

/** Points `bin` (a symlink) at `target`, replacing whatever was there. */
function linkTo(bin, target) {
  try {
    if (lstatSync(bin).isSymbolicLink() && readlinkSync(bin) === target) return;
  } catch {
    /* absent */
  }
  const l = tmp(bin);
  symlinkSync(target, l);
  renameSync(l, bin);
}

/**
 * Writes the executables; returns how each was made. The layout of dist/plugins, for each plugin X:
 *   netplumb-X              symlink to netplumb-forward (or, without a C compiler, to netplumb-X.cjs)
 *   netplumb-X.cjs          the Node plugin: the loader of netplumb-X.bundle.cjs, or without esbuild a wrapper
 *                           importing netplumb-X.js
 *   netplumb-X.bundle.cjs   the bundle (with its per-verb code caches beside it)
 *   netplumb-X.js           tsc's output
 *   netplumb-forward        the compiled forwarder
 */
export async function writePluginBins({ ifStale = false } = {}) {
  if (!existsSync(dir)) return [];
  const plugins = readdirSync(dir)
    .map((f) => /^(netplumb-[a-z-]+)\.js$/.exec(f))
    .filter(Boolean);
  const esbuild = loadEsbuild();
  const newest = ifStale ? Math.max(newestJs(join(dist, 'lib'), join(dist, 'lib', 'index.bundle.js')), newestJs(dir)) : Infinity;
  const made = [await writeExecaBundle(esbuild, { ifStale })].filter(Boolean);
  // a package compiles its forwarder where it is installed (installForwarder)
  const noForwarder = PACKAGE_BUILD ? 'a package build' : writeForwarder({ ifStale });
  const forwarder = noForwarder === undefined;
  if (!forwarder && !PACKAGE_BUILD) process.stderr.write(`write-plugin-bins: no forwarder (${noForwarder}); plugins run in process only\n`);
  for (const [js, name] of plugins) {
    const bin = join(dir, name);
    const loader = `${bin}.cjs`;
    const bundle = `${bin}.bundle.cjs`;
    let how = `bundle ${name}.bundle.cjs`;
    const fresh =
      ifStale && existsSync(bundle) && existsSync(loader) && readFileSync(loader, 'utf8') === loaderText(name, bundle) && statSync(bundle).mtimeMs > newest;
    if (!esbuild) {
      wrapper(loader, js);
      how = 'ES module wrapper (no esbuild)';
    } else if (!fresh) {
      const failed = await bundleTo(esbuild, bundle, {
        entryPoints: [join(dir, js)],
        format: 'cjs',
        external: ['koffi', 'netlink', 'execa'],
        plugins: [IMPORT_SHIM],
      });
      if (failed !== undefined) {
        // Something esbuild cannot turn into CommonJS faithfully (import.meta, top-level await): import the ES module.
        wrapper(loader, js);
        how = `ES module wrapper (esbuild: ${failed})`;
      } else {
        // Caches of the old bundle: V8 would reject them anyway (another run of this script may be removing them too).
        for (const f of readdirSync(dir)) {
          if (!f.startsWith(`${name}.bundle.cjs.`) || !f.endsWith('.cache')) continue;
          try {
            unlinkSync(join(dir, f));
          } catch {
            /* gone already */
          }
        }
        replace(loader, (lt) => {
          writeFileSync(lt, loaderText(name, bundle));
          chmodSync(lt, 0o755);
        });
      }
    }
    if (PACKAGE_BUILD) wrapper(bin, `${name}.cjs`);
    else linkTo(bin, forwarder ? 'netplumb-forward' : `${name}.cjs`);
    made.push(`${name}: ${forwarder ? 'forwarder, ' : ''}Node plugin ${name}.cjs (${how})`);
  }
  const daemon = join(dist, 'bin', 'netplumbd.js');
  if (existsSync(daemon)) wrapper(join(dist, 'bin', 'netplumbd'), 'netplumbd.js');
  return made;
}

/**
 * The installed package's forwarder (`--install`, the package's `install` script): compiles it and points each
 * netplumb-X at it, or at netplumb-X.cjs when it cannot be compiled. Returns the line to print when there is no
 * fast path; undefined when there is, or when there is nothing to install (a checkout before its first build:
 * `prepare` builds it all).
 */
export function installForwarder() {
  if (!existsSync(dir)) return undefined;
  const names = readdirSync(dir)
    .map((f) => /^(netplumb-[a-z-]+)\.cjs$/.exec(f)?.[1])
    .filter((n) => n !== undefined);
  if (names.length === 0) return undefined;
  const noForwarder = writeForwarder({ ifStale: true });
  for (const name of names) linkTo(join(dir, name), noForwarder === undefined ? 'netplumb-forward' : `${name}.cjs`);
  return noForwarder === undefined ? undefined : `netplumb: the CNI fast path through netplumbd is unavailable: ${noForwarder}; the plugins run in Node`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === realpathSync(process.argv[1]) && process.argv.includes('--install')) {
  // Never fails the install: the Node plugins work without the forwarder.
  try {
    const why = installForwarder();
    if (why) process.stderr.write(`${why}\n`);
  } catch (e) {
    process.stderr.write(`netplumb: the CNI fast path through netplumbd is unavailable: ${e.message}; the plugins run in Node\n`);
  }
} else if (process.argv[1] && fileURLToPath(import.meta.url) === realpathSync(process.argv[1])) {
  const ifStale = process.argv.includes('--if-stale');
  const made = [await writeLibraryBundle({ ifStale }), ...(await writePluginBins({ ifStale }))].filter(Boolean);
  if (process.argv.includes('--verbose')) for (const m of made) process.stdout.write(`${m}\n`);
  // the end of a build: scripts/prepare.mjs compares sources with this stamp
  if (!ifStale) writeFileSync(join(dist, '.built'), `${new Date().toISOString()}\n`);
}
