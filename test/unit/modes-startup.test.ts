/**
 * Start-up cost of netplumb-none, -host and -container: the verbs that touch no namespace (VERSION, STATUS,
 * and everything but ADD/CHECK of host mode) load neither netlink nor koffi nor execa. Nothing here touches
 * the machine: VERSION reads nothing, host DEL/GC/STATUS do nothing, STATUS only looks at /run/netplumb.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

const dist = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const register = join(dist, 'test/fixtures/module-log-register.js');
const tmp = mkdtempSync(join(tmpdir(), 'np-modes-startup-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
let n = 0;

async function run(plugin: string, env: Record<string, string>, input = ''): Promise<{ mods: string[]; exitCode: number; stdout: string }> {
  const log = join(tmp, `log${++n}`);
  const r = await execa(process.execPath, ['--import', register, join(dist, `plugins/${plugin}.js`)], {
    env: { ...env, MODULE_LOG: log },
    extendEnv: false,
    input,
    reject: false,
  });
  return { mods: readFileSync(log, 'utf8').split('\n').filter(Boolean), exitCode: r.exitCode ?? -1, stdout: String(r.stdout) };
}

const heavy = (mods: string[]) => mods.filter((u) => /node_modules\/(koffi|netlink|execa)\//.test(u));
const conf = (type: string) => JSON.stringify({ cniVersion: '1.1.0', name: 'n', type, container: 'x', 'cni.dev/valid-attachments': [] });

for (const plugin of ['netplumb-none', 'netplumb-host', 'netplumb-container']) {
  test(`${plugin}: VERSION and STATUS load no native code`, async () => {
    const v = await run(plugin, { CNI_COMMAND: 'VERSION' });
    assert.is(v.exitCode, 0, v.stdout);
    assert.ok(v.mods.some((u) => u.endsWith(`/plugins/${plugin}.js`)), 'the oracle saw the plugin load');
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
