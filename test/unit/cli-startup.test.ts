/**
 * Start-up cost of the netplumb command: each command's module is loaded only when that command runs, so
 * `--version` loads none of them and no netlink, koffi or execa, a command's --help loads its own module and
 * not the others'; the top-level help still lists every command. Nothing here touches the
 * machine (help and version only).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { DIST as dist, heavy, loadedModules } from '../fixtures/startup.js';

const NETPLUMB = join(dist, 'bin/netplumb.js');
const COMMAND_MODULES = ['network-commands', 'run-command', 'show-command', 'install-cni', 'walkthrough-command'];
const run = (...args: string[]) => loadedModules([NETPLUMB, ...args]);
/** the command modules among `mods` */
const commandModules = (mods: readonly string[]) => COMMAND_MODULES.filter((m) => mods.some((u) => u.endsWith(`/lib/cli/${m}.js`)));

test('--version loads no command module and no native code', async () => {
  const r = await run('--version');
  assert.is(r.exitCode, 0);
  assert.match(r.stdout, /^\d+\.\d+\.\d+/);
  assert.ok(
    r.mods.some((u) => u.endsWith('/lib/cli/main.js')),
    'the oracle saw the command load',
  );
  assert.equal(commandModules(r.mods), []);
  assert.equal(heavy(r.mods), []);
});

test("a command's --help loads its own module only", async () => {
  for (const [args, own] of [
    [['network', 'ls', '--help'], 'network-commands'],
    [['connect', '--help'], 'network-commands'],
    [['walkthrough', '--help'], 'walkthrough-command'],
  ] as const) {
    const r = await run(...args);
    assert.is(r.exitCode, 0, args.join(' '));
    assert.match(r.stdout, /^Usage: netplumb/);
    assert.equal(commandModules(r.mods), [own], args.join(' '));
  }
  // network-commands parses --link with lib/networks (which loads netlink); walkthrough's help loads nothing native
  assert.equal(heavy((await run('walkthrough', '--help')).mods), []);
});

test('the top-level help lists every command; a misspelt one is suggested', async () => {
  const r = await run('--help');
  assert.is(r.exitCode, 0);
  for (const c of ['network', 'connect', 'disconnect', 'policy', 'run', 'show', 'install-cni', 'walkthrough']) assert.match(r.stdout, new RegExp(`\\n  ${c} `));
  const typo = await run('netwrk');
  assert.is(typo.exitCode, 2);
});

test.run();
