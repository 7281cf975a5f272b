/**
 * Start-up cost: what a plugin process loads. lib/cni must not pull in netlink, koffi or execa at import;
 * netplumb-host-local loads koffi (flock) only for verbs that touch the store, and execa never.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DIST as dist, heavy, loadedModules } from '../fixtures/startup.js';

const tmp = mkdtempSync(join(tmpdir(), 'np-startup-data-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

test('the oracle sees packages being loaded', async () => {
  const mods = (await loadedModules(['--input-type=module', '-e', "await import('execa')"], {}, '')).mods;
  assert.ok(heavy(mods).length > 0, 'execa shows up');
});

test('importing lib/cni loads neither netlink, koffi, execa nor the IPAM store', async () => {
  const mods = (await loadedModules(['--input-type=module', '-e', `await import(${JSON.stringify(join(dist, 'lib/cni/index.js'))})`])).mods;
  assert.ok(mods.some((u) => u.endsWith('/lib/cni/skeleton.js')));
  assert.equal(heavy(mods), []);
  assert.equal(
    mods.filter((u) => /lib\/ipam\/(store|allocator)\.js$/.test(u)),
    [],
  );
});

test('netplumb-host-local: VERSION loads no native code; ADD loads koffi for flock, never execa', async () => {
  const plugin = join(dist, 'plugins/netplumb-host-local.js');
  const version = (await loadedModules([plugin], { CNI_COMMAND: 'VERSION' })).mods;
  assert.equal(heavy(version), []);
  const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'n', ipam: { type: 'netplumb-host-local', dataDir: join(tmp, 'data'), subnet: '10.1.0.0/24' } });
  const add = (await loadedModules([plugin], { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0' }, conf)).mods;
  assert.ok(readFileSync(join(tmp, 'data/n/10.1.0.2'), 'utf8') === 'c1\r\neth0', 'the ADD did allocate');
  assert.ok(heavy(add).some((u) => u.includes('/koffi/')));
  assert.equal(
    heavy(add).filter((u) => !u.includes('/koffi/')),
    [],
  );
});

test.run();
