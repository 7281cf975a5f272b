// ESLint: TypeScript rules, and the layers of docs/ARCHITECTURE.md as import rules — each layer imports only the
// layers below it (import-x/no-restricted-paths, one zone per layer) and no module takes part in an import cycle
// (import-x/no-cycle, dynamic imports included). Run by `npm run lint`, which `npm test` runs first.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { importX } from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

/**
 * The layers, bottom first, as docs/ARCHITECTURE.md draws them. `may`: the layers a layer's modules may import
 * (besides their own layer). Keep the two in step: the table in the doc is this list.
 */
export const LAYERS = [
  { name: 'leaves', paths: ['lib/errors.ts', 'lib/addr', 'lib/names.ts'], may: [] },
  { name: 'sys', paths: ['lib/sys'], may: ['leaves'] },
  { name: 'netlink', paths: ['lib/netlink'], may: ['leaves', 'sys'] },
  { name: 'net', paths: ['lib/net'], may: ['leaves', 'sys', 'netlink'] },
  { name: 'firewall', paths: ['lib/firewall'], may: ['leaves', 'sys', 'netlink', 'net'] },
  { name: 'ipam', paths: ['lib/ipam'], may: ['leaves', 'sys', 'netlink', 'net'] },
  { name: 'cni', paths: ['lib/cni'], may: ['leaves', 'sys', 'netlink', 'net', 'ipam'] },
  { name: 'modes', paths: ['lib/modes'], may: ['leaves', 'sys', 'netlink', 'net', 'firewall', 'ipam', 'cni'] },
  { name: 'networks', paths: ['lib/networks'], may: ['leaves', 'sys', 'netlink', 'net', 'firewall', 'ipam', 'cni', 'modes'] },
  { name: 'agent', paths: ['lib/agent'], may: ['leaves', 'sys', 'netlink', 'net', 'firewall', 'ipam', 'cni', 'modes', 'networks'] },
  { name: 'cli', paths: ['lib/cli'], may: ['leaves', 'sys', 'netlink', 'net', 'firewall', 'ipam', 'cni', 'modes', 'networks', 'agent'] },
  // the package's public entry: re-exports from the library, imported by nothing in it
  { name: 'api', paths: ['lib/index.ts'], may: ['leaves', 'sys', 'netlink', 'net'] },
];
const LIB = LAYERS.flatMap((l) => l.paths);
/** What the library never imports: the entries above it, tests, tools. */
const ABOVE_LIB = ['plugins', 'bin', 'netns-harness', 'test', 'bench', 'examples', 'scripts'];

const layerZones = LAYERS.map((layer) => {
  const allowed = new Set([layer.name, ...layer.may]);
  return {
    target: layer.paths.map((p) => `./${p}`),
    from: [...LAYERS.filter((l) => !allowed.has(l.name)).flatMap((l) => l.paths), ...ABOVE_LIB].map((p) => `./${p}`),
    message: `lib layer "${layer.name}" imports only ${layer.may.length ? layer.may.join(', ') : 'no other layer'} (docs/ARCHITECTURE.md)`,
  };
});
const entryZones = [
  // plugins/ and bin/ are thin entries: the library, nothing of the tests
  {
    target: ['./plugins', './bin'],
    from: ['./test', './bench', './examples', './netns-harness', './scripts'],
    message: 'entries import only lib/ (docs/ARCHITECTURE.md)',
  },
  // the harness is a published export of its own: it may use the low layers, never the plugins' logic or the tests
  {
    target: ['./netns-harness'],
    from: [
      './test',
      './bench',
      './examples',
      './plugins',
      './bin',
      ...LIB.filter((p) => !['lib/errors.ts', 'lib/addr', 'lib/names.ts', 'lib/sys'].includes(p)).map((p) => `./${p}`),
    ],
    message: 'netns-harness imports only lib/sys and the leaves (docs/ARCHITECTURE.md)',
  },
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    plugins: { 'import-x': importX },
    languageOptions: { parserOptions: { projectService: false } },
    settings: {
      ...importX.flatConfigs.typescript.settings, // parse .ts modules when following imports (no-cycle)
      'import-x/resolver': undefined,
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })],
    },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-restricted-paths': ['error', { zones: [...layerZones, ...entryZones] }],
      'import-x/no-self-import': 'error',
      'import-x/no-useless-path-segments': 'error',
      // the code's own conventions, which the recommended sets would flag
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    // Tests, benchmarks and the harness read untyped JSON oracles (`ip -j`, `nft -j`, Results) field by field.
    files: ['test/**', 'bench/**', 'netns-harness/**', 'examples/**'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly' } },
  },
);
