/**
 * docs/ARCHITECTURE.md and the lint rules that enforce it describe the same layers: the table of the doc
 * (layer, paths, may import) equals `LAYERS` of eslint.config.js, which builds the import rules.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

interface Layer {
  name: string;
  paths: string[];
  may: string[];
}

/** The rows of the doc's layer table whose paths are under lib/. */
function docLayers(): Layer[] {
  const md = readFileSync(join(root, 'docs/ARCHITECTURE.md'), 'utf8');
  const rows = md.split('\n').filter((l) => /^\| [a-z]+ \| `lib\//.test(l));
  return rows.map((row) => {
    const [name, paths, may] = row
      .split('|')
      .slice(1, 4)
      .map((c) => c.trim());
    return {
      name: name!,
      paths: [...paths!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!.replace(/\/$/, '')),
      may: may === 'nothing of lib/' ? [] : may!.split(',').map((s) => s.trim()),
    };
  });
}

test('the layer table of docs/ARCHITECTURE.md is the LAYERS list the lint rules are built from', async () => {
  const { LAYERS } = (await import(pathToFileURL(join(root, 'eslint.config.js')).href)) as { LAYERS: Layer[] };
  const doc = docLayers();
  assert.ok(doc.length >= 10, `the doc lists the lib layers (found ${doc.length})`);
  assert.equal(
    doc,
    LAYERS.map((l) => ({ name: l.name, paths: l.paths, may: l.may })),
  );
});

test('every directory of lib/ belongs to a layer', async () => {
  const { LAYERS } = (await import(pathToFileURL(join(root, 'eslint.config.js')).href)) as { LAYERS: Layer[] };
  const { readdirSync } = await import('node:fs');
  const covered = new Set(LAYERS.flatMap((l) => l.paths));
  for (const e of readdirSync(join(root, 'lib'), { withFileTypes: true })) {
    const p = `lib/${e.name}`;
    if (e.isDirectory() || p.endsWith('.ts')) assert.ok(covered.has(p), `${p} is in no layer of eslint.config.js`);
  }
});

test.run();
