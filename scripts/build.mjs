// The build npm runs by itself (the `prepare` script): on `npm install` in a checkout, on a git install, and on
// `npm pack`/`npm publish`. For a package (npm_command pack or publish, or --package) it builds only what is
// shipped (tsconfig.package.json: no tests, no benchmarks), without source maps (the TypeScript sources are not
// shipped) and with plugin loaders that keep their code caches outside the package
// (scripts/write-plugin-bins.mjs --package); otherwise it is `npm run build`.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const pack = process.argv.includes('--package') || ['pack', 'publish'].includes(process.env.npm_command ?? '');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const steps = [
  [process.execPath, tsc, '-p', ...(pack ? ['tsconfig.package.json', '--sourceMap', 'false'] : ['tsconfig.json'])],
  [process.execPath, 'scripts/write-plugin-bins.mjs', ...(pack ? ['--package'] : [])],
];
if (pack) steps.unshift([process.execPath, '-e', "require('fs').rmSync('dist', { recursive: true, force: true })"]);
for (const [cmd, ...args] of steps) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
