// After tsc: bundle the library's entry (writeLibraryBundle, below), and turn each dist/plugins/netplumb-*.js into an executable without extension, so that
// CNI_PATH=<repo>/dist/plugins finds `netplumb-bridge` etc. the way a runtime looks plugins up.
//
// With esbuild (a devDependency) each plugin is bundled into one CommonJS file, dist/plugins/netplumb-X.bundle.cjs
// (koffi, netlink and execa stay outside: native code, and execa is loaded only when a plugin execs another —
// from dist/plugins/execa.bundle.cjs, execa alone bundled into CommonJS, when the loader finds it).
// netplumb-X.cjs is a small loader that compiles the bundle with V8's code cache (one cache file per CNI verb,
// netplumb-X.bundle.cjs.<VERB>.cache, written by the first run of that verb that finds none or a stale one, if
// the directory is writable), and netplumb-X is a symlink to the loader. A plugin is a fresh process for every
// verb: one file instead of some forty ES modules saves about 20 ms a process, the code cache a few more
// (bench/bridge.bench.ts; docs/BRIDGE.md). The symlink makes Node load the loader as CommonJS (an extensionless
// file in this "type": "module" package would be ESM). Without esbuild, netplumb-X is the two-line ES module
// wrapper `import './netplumb-X.js'`.
//
// The shebangs drop NODE_EXTRA_CA_CERTS: with it set, Node parses the CA bundle while starting (about 30 ms
// of a ~45 ms start here), and a plugin never opens a TLS connection.
//
// Every file is written under a temporary name and renamed, so a plugin being executed meanwhile (tests run
// this concurrently) is never seen half written. `--if-stale` skips the work when every bundle is newer than
// every compiled file it could contain.
import {
  chmodSync, existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync, renameSync, statSync, symlinkSync, unlinkSync, writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = fileURLToPath(new URL('../dist/', import.meta.url));
const SHEBANG = '#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node';
const dir = join(dist, 'plugins');
const tmp = (p) => `${p}.${process.pid}.tmp`;

function newestJs(d, except) {
  let newest = 0;
  for (const e of readdirSync(d, { withFileTypes: true })) {
    const p = join(d, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestJs(p, except));
    else if (e.name.endsWith('.js') && p !== except) newest = Math.max(newest, statSync(p).mtimeMs);
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
  const body = `${SHEBANG}\nimport './${js}';\n`;
  if (existsSync(bin) && !isLink(bin) && readFileSync(bin, 'utf8') === body) return;
  replace(bin, (t) => {
    writeFileSync(t, body);
    chmodSync(t, 0o755);
  });
}

function isLink(p) {
  try {
    return lstatSync(p).isSymbolicLink() && readlinkSync(p) === `${p.slice(p.lastIndexOf('/') + 1)}.cjs`;
  } catch {
    return false;
  }
}

// The loader: compiles the bundle as Node's CommonJS loader would (same wrapper, same require), with V8's code
// cache for this verb when there is a valid one, and leaves a fresh cache behind when there was none. Dynamic
// import() in the bundle (execa) goes through __netplumbImport, below.
const LOADER = `${SHEBANG}
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const Module = require('node:module');
const file = path.join(__dirname, BUNDLE);
const cacheFile = \`\${file}.\${/^[A-Z]+$/.test(process.env.CNI_COMMAND ?? '') ? process.env.CNI_COMMAND : 'other'}.cache\`;
let cachedData;
try {
  cachedData = fs.readFileSync(cacheFile);
} catch {}
const script = new vm.Script(Module.wrap(fs.readFileSync(file, 'utf8')), {
  filename: file,
  cachedData,
});
if (cachedData === undefined || script.cachedDataRejected) {
  process.once('exit', () => {
    try {
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
 * The library's own entry, dist/lib/index.bundle.js: dist/lib/index.js and every module it imports in one ES
 * module (koffi and netlink stay outside: native code), which the package's `exports["."]` points to. A program
 * that imports `netplumb` then loads one file instead of some thirty: about 5 ms less per fresh process here
 * (the ESM loader resolves, reads and links each file; bench/links.bench.ts, docs/NET.md). The unbundled
 * modules stay in dist/lib for the plugins' bundles, the tests and the types (`exports` keeps index.d.ts).
 * Without esbuild, or if esbuild cannot bundle faithfully, the entry re-exports dist/lib/index.js.
 */
export async function writeLibraryBundle({ ifStale = false } = {}) {
  const index = join(dist, 'lib', 'index.js');
  if (!existsSync(index)) return undefined;
  const out = join(dist, 'lib', 'index.bundle.js');
  const fallback = "// esbuild was not available at build time: the unbundled entry.\nexport * from './index.js';\n";
  const esbuild = loadEsbuild();
  if (ifStale && existsSync(out) && statSync(out).mtimeMs > newestJs(join(dist, 'lib'), out)) return 'library: up to date';
  if (esbuild && (await bundleTo(esbuild, out, { entryPoints: [index], format: 'esm', external: ['koffi', 'netlink', 'execa', 'ip-cidr'] })) === undefined) {
    return 'library: bundle dist/lib/index.bundle.js';
  }
  replace(out, (t) => writeFileSync(t, fallback));
  return 'library: re-export of dist/lib/index.js';
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

/** Writes the executables; returns how each was made. */
export async function writePluginBins({ ifStale = false } = {}) {
  if (!existsSync(dir)) return [];
  const plugins = readdirSync(dir)
    .map((f) => /^(netplumb-[a-z-]+)\.js$/.exec(f))
    .filter(Boolean);
  const esbuild = loadEsbuild();
  const newest = ifStale ? Math.max(newestJs(join(dist, 'lib'), join(dist, 'lib', 'index.bundle.js')), newestJs(dir)) : Infinity;
  const made = [await writeExecaBundle(esbuild, { ifStale })].filter(Boolean);
  for (const [js, name] of plugins) {
    const bin = join(dir, name);
    const loader = `${bin}.cjs`;
    const bundle = `${bin}.bundle.cjs`;
    if (!esbuild) {
      wrapper(bin, js);
      made.push(`${name}: ES module wrapper (no esbuild)`);
      continue;
    }
    if (!(ifStale && existsSync(bundle) && existsSync(loader) && isLink(bin) && statSync(bundle).mtimeMs > newest)) {
      const failed = await bundleTo(esbuild, bundle, { entryPoints: [join(dir, js)], format: 'cjs', external: ['koffi', 'netlink', 'execa'], plugins: [IMPORT_SHIM] });
      if (failed !== undefined) {
        // Something esbuild cannot turn into CommonJS faithfully (import.meta, top-level await): keep ESM.
        wrapper(bin, js);
        made.push(`${name}: ES module wrapper (esbuild: ${failed})`);
        continue;
      }
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
        writeFileSync(lt, LOADER.replace('BUNDLE', JSON.stringify(`${name}.bundle.cjs`)));
        chmodSync(lt, 0o755);
      });
    }
    if (!isLink(bin)) {
      const l = tmp(bin);
      symlinkSync(`${name}.cjs`, l);
      renameSync(l, bin);
    }
    made.push(`${name}: bundle ${name}.cjs`);
  }
  return made;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === realpathSync(process.argv[1])) {
  const ifStale = process.argv.includes('--if-stale');
  const made = [await writeLibraryBundle({ ifStale }), ...(await writePluginBins({ ifStale }))].filter(Boolean);
  if (process.argv.includes('--verbose')) for (const m of made) process.stdout.write(`${m}\n`);
  // the end of a build: scripts/prepare.mjs compares sources with this stamp
  if (!ifStale) writeFileSync(join(dist, '.built'), `${new Date().toISOString()}\n`);
}
