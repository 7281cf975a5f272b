/**
 * The CNI contract every netplumb plugin keeps, checked the same way for each: VERSION answers without a
 * configuration; DEL is idempotent (an attachment that never existed, or is already gone, with or without
 * CNI_NETNS, succeeds with nothing on stdout and changes nothing); a broken environment is refused with
 * error 4 naming the variable, before anything changes. Plugin-specific behaviour is in each plugin's own file.
 *
 * The world is the hostile-input lab (fixtures/hardening.ts inputLab): the sandbox's namespace plays the
 * host, one container, a fresh IPAM store; "nothing changed" is its whole snapshot.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { diffSnapshots, execPlugin, sandboxed, type PluginRun } from '../../netns-harness/index.js';
import { ensurePluginBins, pluginPath, VERSIONS } from '../fixtures/cni-runtime.js';
import { inputLab, PLUGINS, settled, type PluginName } from '../fixtures/hardening.js';
import { assertRefused } from '../fixtures/assert.js';

await sandboxed();
ensurePluginBins();
const lab = await inputLab();

/** Runs `plugin` with the lab's environment for `verb`, changed by `env` (undefined removes a variable). */
function exec(plugin: PluginName, verb: string, env: Record<string, string | undefined> = {}, config: unknown = lab.config(plugin, verb)): Promise<PluginRun> {
  const stdin = typeof config === 'string' ? config : JSON.stringify(config);
  return execPlugin({ file: pluginPath(plugin), env: { ...lab.env(plugin, verb), ...env }, stdin });
}

for (const plugin of PLUGINS) {
  test(`${plugin}: VERSION lists every supported version, with or without a configuration`, async () => {
    for (const stdin of ['', JSON.stringify({ cniVersion: '1.1.0' })]) {
      const r = await exec(plugin, 'VERSION', { CNI_CONTAINERID: undefined, CNI_NETNS: undefined, CNI_IFNAME: undefined }, stdin);
      assert.equal([r.exitCode, r.json], [0, { cniVersion: '1.1.0', supportedVersions: [...VERSIONS] }], `${JSON.stringify(stdin)}: ${r.stdout} ${r.stderr}`);
    }
  });

  test(`${plugin}: DEL of what was never added succeeds (twice, and without CNI_NETNS); a broken environment is refused with error 4 naming the variable; neither changes anything`, async () => {
    const before = await settled(lab.snapshot);
    for (const env of [{ CNI_CONTAINERID: 'never-added' }, { CNI_CONTAINERID: 'never-added' }, { CNI_CONTAINERID: 'never-added', CNI_NETNS: '' }]) {
      const r = await exec(plugin, 'DEL', env);
      assert.equal([r.exitCode, r.stdout], [0, ''], `DEL ${JSON.stringify(env)}: ${r.stdout} ${r.stderr}`);
    }
    const cases: [string, Record<string, string | undefined>, RegExp][] = [
      ['no CNI_COMMAND', { CNI_COMMAND: undefined }, /CNI_COMMAND/],
      ['an unknown CNI_COMMAND', { CNI_COMMAND: 'FROB' }, /CNI_COMMAND|FROB/],
      ['ADD without CNI_CONTAINERID', { CNI_CONTAINERID: undefined }, /CNI_CONTAINERID/],
      ['ADD without CNI_IFNAME', { CNI_IFNAME: undefined }, /CNI_IFNAME/],
    ];
    for (const [what, env, field] of cases) {
      assertRefused(await exec(plugin, 'ADD', env), 4, field, `${plugin} ${what}`);
    }
    assert.equal(diffSnapshots(before, await settled(lab.snapshot)), []);
  });
}

test('an ADD that succeeded, DELeted twice: the second DEL succeeds and changes nothing', async () => {
  for (const plugin of ['netplumb-bridge', 'netplumb-host-local', 'netplumb-none'] as const) {
    const add = await exec(plugin, 'ADD', { CNI_CONTAINERID: 'twice' });
    assert.is(add.exitCode, 0, `${plugin} ADD: ${add.stdout} ${add.stderr}`);
    const del = await exec(plugin, 'DEL', { CNI_CONTAINERID: 'twice' });
    assert.equal([del.exitCode, del.stdout], [0, ''], `${plugin} DEL: ${del.stdout} ${del.stderr}`);
    const afterFirst = await settled(lab.snapshot);
    const again = await exec(plugin, 'DEL', { CNI_CONTAINERID: 'twice' });
    assert.equal([again.exitCode, again.stdout], [0, ''], `${plugin} second DEL: ${again.stdout} ${again.stderr}`);
    assert.equal(diffSnapshots(afterFirst, await settled(lab.snapshot)), [], `${plugin}: the second DEL changed nothing`);
  }
});

test.run();
