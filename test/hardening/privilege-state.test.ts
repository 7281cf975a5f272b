/**
 * State files: the modes netplumb creates its state with (IPAM store, attachment records)
 * and what it does with symbolic links planted where it keeps state. A link is never followed: the target a
 * link points at (a stand-in for /etc/passwd, in a temporary directory) keeps its content and mode, and the
 * plugin either ignores the link safely or refuses with error 106.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execPlugin, run, sandboxed } from '../../netns-harness/index.js';
import { ensurePluginBins, NETPLUMB_BIN, pluginPath, REFERENCE_BIN, treeSnapshot } from '../fixtures/cni-runtime.js';
import { STATE_ROOT } from '../fixtures/hardening.js';
import { assertRefused } from '../fixtures/assert.js';

await sandboxed();
ensurePluginBins();

const root = mkdtempSync('/run/np-state-');
/** The stand-in for a file another user wants netplumb to overwrite. */
const victimDir = join(root, 'victim');
mkdirSync(victimDir);
const victim = join(victimDir, 'passwd');
writeFileSync(victim, 'root:x:0:0:root:/root:/bin/bash\n', { mode: 0o644 });
const victimState = () => JSON.stringify(treeSnapshot(victimDir));
const victimBefore = victimState();

await run(['ip', 'netns', 'add', 'st-a']);
const NETNS = '/run/netns/st-a';

function ipamConf(dataDir: string, name = 'statenet', type = 'netplumb-host-local') {
  return { cniVersion: '1.1.0', name, type, ipam: { type, dataDir, ranges: [[{ subnet: '10.94.0.0/24' }]] } };
}
async function exec(plugin: string, verb: string, conf: any, id: string, extra: Record<string, unknown> = {}) {
  const env = { CNI_COMMAND: verb, CNI_CONTAINERID: id, CNI_NETNS: NETNS, CNI_IFNAME: 'eth0', CNI_PATH: `${NETPLUMB_BIN}:${REFERENCE_BIN}` };
  return execPlugin({ file: pluginPath(plugin), env, stdin: JSON.stringify({ ...conf, ...extra }) });
}
const mode = (p: string) => (lstatSync(p).mode & 0o777).toString(8);

test('modes: IPAM store directory 0700 and files 0600, never looser than the reference host-local; records 0700/0600', async () => {
  const mine = join(root, 'np');
  const ref = join(root, 'ref');
  assert.is((await exec('netplumb-host-local', 'ADD', ipamConf(mine), 'm-1')).exitCode, 0);
  const r = await exec(join(REFERENCE_BIN, 'host-local'), 'ADD', { ...ipamConf(ref, 'statenet', 'host-local'), cniVersion: '1.0.0' }, 'm-1');
  assert.is(r.exitCode, 0, r.stdout);
  const modes = (d: string) => Object.fromEntries(readdirSync(join(d, 'statenet')).map((f) => [f.replace(/^\d.*/, '<ip>'), mode(join(d, 'statenet', f))]));
  const npModes = { dir: mode(join(mine, 'statenet')), dataDir: mode(mine), ...modes(mine) };
  const refModes = { dir: mode(join(ref, 'statenet')), dataDir: mode(ref), ...modes(ref) };
  assert.equal(npModes, { dir: '700', dataDir: '700', '<ip>': '600', lock: '600', 'last_reserved_ip.0': '600' });
  for (const [k, m] of Object.entries(npModes)) {
    const theirs = (refModes as Record<string, string>)[k];
    if (theirs !== undefined) assert.is(parseInt(m, 8) & ~parseInt(theirs, 8), 0, `${k}: netplumb ${m} is looser than host-local's ${theirs}`);
  }
  // attachment records
  const none = { cniVersion: '1.1.0', name: 'statelo', type: 'netplumb-none' };
  assert.is((await exec('netplumb-none', 'ADD', none, 'm-2')).exitCode, 0);
  const recDir = join(STATE_ROOT, 'attachments', 'm-2');
  assert.is(mode(STATE_ROOT), '700');
  assert.is(mode(join(STATE_ROOT, 'attachments')), '700');
  assert.is(mode(recDir), '700');
  for (const f of readdirSync(recDir)) assert.is(mode(join(recDir, f)), '600', f);
  assert.is((await exec('netplumb-none', 'DEL', none, 'm-2')).exitCode, 0);
});

/** A store (in `<root>/<dir>`) with `entry` planted as a link to the victim, then a successful ADD of `id`. */
async function addWithPlanted(dir: string, entry: string, id: string): Promise<{ dataDir: string; store: string; address: string }> {
  const dataDir = join(root, dir);
  const store = join(dataDir, 'statenet');
  mkdirSync(store, { recursive: true, mode: 0o700 });
  symlinkSync(victim, join(store, entry));
  const r = await exec('netplumb-host-local', 'ADD', ipamConf(dataDir), id);
  assert.is(r.exitCode, 0, r.stdout);
  return { dataDir, store, address: JSON.parse(r.stdout).ips[0].address };
}

test("IPAM store: a planted link under an address's name is not followed — the address counts as taken, GC removes the link", async () => {
  const { dataDir, store, address } = await addWithPlanted('plant-ip', '10.94.0.2', 'p-1');
  assert.is(address, '10.94.0.3/24', 'the planted name is taken, not overwritten');
  assert.is(victimState(), victimBefore);
  assert.is((await exec('netplumb-host-local', 'DEL', ipamConf(dataDir), 'p-1')).exitCode, 0);
  const gc = await exec('netplumb-host-local', 'GC', ipamConf(dataDir), '', { 'cni.dev/valid-attachments': [] });
  assert.is(gc.exitCode, 0, gc.stdout);
  assert.not.ok(readdirSync(store).includes('10.94.0.2'), 'GC removed the planted link');
  assert.is(victimState(), victimBefore, 'GC removed the link, not its target');
});

test('IPAM store: a planted last_reserved_ip.0 link is not read and is replaced (rename), not written through', async () => {
  const { store, address } = await addWithPlanted('plant-last', 'last_reserved_ip.0', 'p-2');
  assert.is(address, '10.94.0.2/24', "the link's target was not read as an address");
  assert.ok(lstatSync(join(store, 'last_reserved_ip.0')).isFile(), 'the link was replaced by a regular file');
  assert.is(readFileSync(join(store, 'last_reserved_ip.0'), 'utf8'), '10.94.0.2');
  assert.is(victimState(), victimBefore);
});

test('IPAM store: a planted lock link or a network directory that is a link: error 106, nothing written', async () => {
  const a = join(root, 'plant-lock');
  mkdirSync(join(a, 'statenet'), { recursive: true, mode: 0o700 });
  symlinkSync(victim, join(a, 'statenet', 'lock'));
  assertRefused(await exec('netplumb-host-local', 'ADD', ipamConf(a), 'p-3'), 106, /lock.*symbolic link|symbolic link/, 'lock is a link');
  const b = join(root, 'plant-dir');
  mkdirSync(b, { mode: 0o700 });
  symlinkSync(victimDir, join(b, 'statenet'));
  for (const verb of ['ADD', 'DEL']) {
    assertRefused(await exec('netplumb-host-local', verb, ipamConf(b), 'p-4'), 106, /statenet.*symbolic link/, `${verb}: store directory is a link`);
  }
  // the bridge, which runs the same IPAM in process
  const bridge = { ...ipamConf(b), type: 'netplumb-bridge', bridge: 'stbr0' };
  assertRefused(await exec('netplumb-bridge', 'ADD', bridge, 'p-4'), 106, /symbolic link/, 'bridge ADD: store directory is a link');
  assert.is(victimState(), victimBefore);
  assert.not.ok((await run(['ip', 'link', 'show', 'stbr0'], { check: false })).exitCode === 0, 'the bridge ADD created no bridge');
});

test("attachment records: a planted link for a container's record directory or for a record: error 106, the target untouched", async () => {
  const none = { cniVersion: '1.1.0', name: 'statelo', type: 'netplumb-none' };
  mkdirSync(join(STATE_ROOT, 'attachments'), { recursive: true, mode: 0o700 });
  symlinkSync(victimDir, join(STATE_ROOT, 'attachments', 'p-5'));
  for (const verb of ['ADD', 'DEL']) {
    assertRefused(await exec('netplumb-none', verb, none, 'p-5'), 106, /symbolic link|not a directory|p-5/, `${verb}: record directory is a link`);
  }
  rmSync(join(STATE_ROOT, 'attachments', 'p-5'));
  mkdirSync(join(STATE_ROOT, 'attachments', 'p-6'), { mode: 0o700 });
  const record = join(STATE_ROOT, 'attachments', 'p-6', 'none:statelo:eth0');
  symlinkSync(victim, record);
  // DEL reads the record: a link is refused
  assertRefused(await exec('netplumb-none', 'DEL', none, 'p-6'), 106, /none:statelo:eth0/, 'DEL: record is a link');
  // ADD writes a new record by rename, which replaces the link itself
  const add = await exec('netplumb-none', 'ADD', none, 'p-6');
  assert.is(add.exitCode, 0, add.stdout);
  assert.ok(lstatSync(record).isFile(), 'the link was replaced by a regular file');
  assert.is((await exec('netplumb-none', 'DEL', none, 'p-6')).exitCode, 0);
  assert.is(victimState(), victimBefore);
  assert.is(statSync(victim).mode & 0o777, 0o644);
});

test.run();
