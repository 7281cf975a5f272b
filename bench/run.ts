/**
 * Runs the benchmarks: every dist/bench/*.bench.js, or those named (`npm run bench -- links ipam`).
 * Each benchmark is a standalone program that sandboxes itself, runs netplumb and the reference tools side
 * by side, and prints times and ratios.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = dirname(fileURLToPath(import.meta.url));
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.js'))
  .sort();
// Names come first; everything from the first option on is passed to each benchmark (`links --n 200`).
const args = process.argv.slice(2);
const firstOpt = args.findIndex((a) => a.startsWith('-'));
const wanted = firstOpt === -1 ? args : args.slice(0, firstOpt);
const passed = firstOpt === -1 ? [] : args.slice(firstOpt).filter((a) => a !== '--');
const chosen = wanted.length ? all.filter((f) => wanted.some((w) => f.startsWith(`${w}.`))) : all;
if (chosen.length === 0) {
  process.stderr.write(`no benchmark matches ${wanted.join(' ')}; have: ${all.join(' ') || '(none yet)'}\n`);
  process.exit(wanted.length ? 1 : 0);
}
let failed = 0;
for (const f of chosen) {
  process.stdout.write(`\n━━ ${f.replace(/\.bench\.js$/, '')}\n`);
  const r = spawnSync(process.execPath, [join(dir, f), ...passed], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
