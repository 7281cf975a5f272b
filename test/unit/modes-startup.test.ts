/**
 * Start-up cost of netplumb-none, -host and -container: the verbs that touch no namespace (VERSION, STATUS,
 * and everything but ADD/CHECK of host mode) load neither netlink nor koffi nor execa. Nothing here touches
 * the machine: VERSION reads nothing, host DEL/GC/STATUS do nothing, STATUS only looks at /run/netplumb.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { DIST as dist, heavy, loadedModules } from '../fixtures/startup.js';

const run = (plugin: string, env: Record<string, string>, input = '') => loadedModules([join(dist, `plugins/${plugin}.js`)], env, input);
const conf = (type: string) => JSON.stringify({ cniVersion: '1.1.0', name: 'n', type, container: 'x', 'cni.dev/valid-attachments': [] });

for (const plugin of ['netplumb-none', 'netplumb-host', 'netplumb-container']) {
  test(`${plugin}: VERSION and STATUS load no native code`, async () => {
    const v = await run(plugin, { CNI_COMMAND: 'VERSION' });
    assert.is(v.exitCode, 0, v.stdout);
    assert.ok(
      v.mods.some((u) => u.endsWith(`/plugins/${plugin}.js`)),
      'the oracle saw the plugin load',
    );
    assert.equal(heavy(v.mods), []);
    const s = await run(plugin, { CNI_COMMAND: 'STATUS' }, conf(plugin));
    assert.is(s.exitCode, 0, s.stdout);
    assert.equal(heavy(s.mods), []);
  });
}

test('netplumb-host: DEL and GC load no native code', async () => {
  const envs: Record<string, string>[] = [{ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c', CNI_IFNAME: 'eth0', CNI_NETNS: '/nowhere' }, { CNI_COMMAND: 'GC' }];
  for (const env of envs) {
    const r = await run('netplumb-host', env, conf('netplumb-host'));
    assert.is(r.exitCode, 0, r.stdout);
    assert.equal(heavy(r.mods), []);
  }
});

test.run();
