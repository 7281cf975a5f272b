/**
 * netplumbd releases what a container left when its namespace vanished without a DEL: on the namespace's
 * RTM_DELNSID (and a bridge veth's RTM_DELLINK), after a grace period, it runs the DEL itself (lease, nft rules
 * and map elements, records) for every mode that leaves something (bridge, none, container; the overlay's in
 * test/e2e/overlay.test.ts); a late DEL still succeeds; at start it releases attachments whose namespace went
 * while it was down. Oracles: `ip -j`, `nft -j`, the IPAM store's files (the storm fixture's attachmentsOf) and
 * the record files.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createHost, destroyAll, sandboxed, waitFor, type Host } from '../../netns-harness/index.js';
import { bridgeConf } from '../fixtures/bridge-lab.js';
import { agentIn, attachEnv, eventsOf, forward, socketPath } from '../fixtures/agent.js';
import { attachmentsOf } from '../fixtures/storm.js';

await sandboxed();

let host: Host;
test.before(async () => {
  host = await createHost('agent-cleanup');
});
test.after(async () => {
  await destroyAll();
});

const nothing = [[], [], [], [], []];
const state = async (conf: any, bridge: string) => {
  const a = await attachmentsOf(host, conf.name, bridge, join(conf.ipam.dataDir, conf.name));
  return [a.veths, a.rules, a.elements, a.reservations, a.strays];
};

test('a container whose namespace vanished without DEL is released after the grace period; a late DEL succeeds', async () => {
  const agent = await agentIn(host, { args: ['--cleanup-grace', '0.3'] });
  try {
    const conf = bridgeConf({ name: 'ag-gone', bridge: 'npaggo', subnet: '10.90.0.0/24', ipMasq: true, macspoofchk: true });
    const keep = await host.createContainer('keep1');
    const gone = await host.createContainer('gone1');
    for (const [id, c] of [
      ['keep1', keep],
      ['gone1', gone],
    ] as const) {
      const r = await forward('netplumb-bridge', { socket: agent.socket, where: host, env: attachEnv('ADD', id, c), stdin: JSON.stringify(conf) });
      assert.is(r.exitCode, 0, r.stdout);
    }
    assert.equal(await state(conf, 'npaggo'), [
      ['gone1/eth0', 'keep1/eth0'],
      ['gone1/eth0', 'keep1/eth0'],
      ['gone1/eth0', 'keep1/eth0'],
      ['gone1/eth0', 'keep1/eth0'],
      [],
    ]);
    await gone.destroy(); // the runtime crashed: no DEL
    const released = await eventsOf(agent, (e) => e.event === 'cleanup');
    assert.is(released.length, 1, agent.log());
    assert.is(released[0]!.container, 'gone1');
    assert.is(released[0]!.outcome, 'released');
    assert.equal(await state(conf, 'npaggo'), [['keep1/eth0'], ['keep1/eth0'], ['keep1/eth0'], ['keep1/eth0'], []], 'only the living container remains');
    const late = await forward('netplumb-bridge', {
      socket: agent.socket,
      where: host,
      env: attachEnv('DEL', 'gone1', undefined),
      stdin: JSON.stringify(conf),
    });
    assert.is(late.exitCode, 0, late.stdout);
    const d = await forward('netplumb-bridge', { socket: agent.socket, where: host, env: attachEnv('DEL', 'keep1', keep), stdin: JSON.stringify(conf) });
    assert.is(d.exitCode, 0, d.stdout);
    assert.equal(await state(conf, 'npaggo'), nothing);
  } finally {
    await agent.stop();
  }
});

/** The record files of attachments and of the agent's kept requests, as `container/file`. */
function recordFiles(): string[] {
  const out: string[] = [];
  for (const dir of ['/run/netplumb/attachments', '/run/netplumb/agent']) {
    if (!existsSync(dir)) continue;
    for (const id of readdirSync(dir)) for (const f of readdirSync(join(dir, id))) out.push(`${id}/${f}`);
  }
  return out.sort();
}

test('none and container attachments whose namespace vanished without DEL are released; late DELs succeed', async () => {
  const agent = await agentIn(host, { args: ['--cleanup-grace', '0.3'] });
  try {
    const none = { cniVersion: '1.1.0', name: 'ag-lo', type: 'netplumb-none' };
    const joined = { cniVersion: '1.1.0', name: 'ag-join', type: 'netplumb-container', container: 'lotgt' };
    const stays = await host.createContainer('lostays');
    const target = await host.createContainer('lotgt');
    const ok = async (type: string, conf: object, env: Record<string, string>) => {
      const r = await forward(type, { socket: agent.socket, where: host, env, stdin: JSON.stringify(conf) });
      assert.is(r.exitCode, 0, `${type} ${env.CNI_COMMAND} ${env.CNI_CONTAINERID}: ${r.stdout}`);
    };
    await ok('netplumb-none', none, attachEnv('ADD', 'lostays', stays));
    await ok('netplumb-none', none, attachEnv('ADD', 'lotgt', target));
    // the runtime hands the joining container the target's namespace (as podman's --net=container does)
    await ok('netplumb-container', joined, attachEnv('ADD', 'lojoin', target));
    const living = (ids: string[]) => recordFiles().filter((f) => ids.includes(f.split('/')[0]!));
    assert.equal(living(['lotgt', 'lojoin']), [
      'lojoin/container:ag-join:eth0',
      'lojoin/netplumb-container:ag-join:eth0.json',
      'lotgt/netplumb-none:ag-lo:eth0.json',
      'lotgt/none:ag-lo:eth0',
    ]);
    const before = living(['lostays']);
    assert.is(before.length, 2, before.join(' '));
    await target.destroy(); // its process died, the runtime crashed: no DEL for lotgt nor lojoin
    const released = () =>
      agent
        .events()
        .filter((e) => e.event === 'cleanup')
        .map((e) => `${e.plugin} ${e.container} ${e.outcome}`)
        .sort();
    // the agent logs each release after its files are gone: wait for both, the files and the log lines
    const cleaned = await waitFor(() => living(['lotgt', 'lojoin']).length === 0 && released().length >= 2, { timeoutMs: 30_000 });
    assert.ok(cleaned, `records left: ${living(['lotgt', 'lojoin'])}\n${agent.log()}`);
    assert.equal(living(['lostays']), before, 'the living container keeps its records');
    assert.equal(released(), ['netplumb-container lojoin released', 'netplumb-none lotgt released']);
    await ok('netplumb-container', joined, attachEnv('DEL', 'lojoin', undefined));
    await ok('netplumb-none', none, attachEnv('DEL', 'lotgt', undefined));
    await ok('netplumb-none', none, attachEnv('DEL', 'lostays', stays));
    assert.equal(living(['lostays']), []);
  } finally {
    await agent.stop();
  }
});

test('a GC through the agent forgets the requests it kept of the attachments it collected, and no others', async () => {
  const agent = await agentIn(host, { args: ['--cleanup-grace', '600'] });
  try {
    const none = { cniVersion: '1.1.0', name: 'ag-gc', type: 'netplumb-none' };
    const [a, b] = [await host.createContainer('gca'), await host.createContainer('gcb')];
    for (const [id, c] of [
      ['gca', a],
      ['gcb', b],
    ] as const) {
      const r = await forward('netplumb-none', { socket: agent.socket, where: host, env: attachEnv('ADD', id, c), stdin: JSON.stringify(none) });
      assert.is(r.exitCode, 0, r.stdout);
    }
    const gcConf = { ...none, 'cni.dev/valid-attachments': [{ containerID: 'gca', ifname: 'eth0' }] };
    const gc = await forward('netplumb-none', { socket: agent.socket, where: host, env: { CNI_COMMAND: 'GC' }, stdin: JSON.stringify(gcConf) });
    assert.is(gc.exitCode, 0, gc.stdout);
    assert.equal(
      recordFiles().filter((f) => /^gc[ab]\//.test(f)),
      ['gca/netplumb-none:ag-gc:eth0.json', 'gca/none:ag-gc:eth0'],
    );
    const d = await forward('netplumb-none', { socket: agent.socket, where: host, env: attachEnv('DEL', 'gca', a), stdin: JSON.stringify(none) });
    assert.is(d.exitCode, 0, d.stdout);
    assert.equal(
      recordFiles().filter((f) => /^gc[ab]\//.test(f)),
      [],
    );
  } finally {
    await agent.stop();
  }
});

test('a DEL within the grace period wins: the agent finds nothing left to do', async () => {
  const agent = await agentIn(host, { args: ['--cleanup-grace', '600'] });
  try {
    const conf = bridgeConf({ name: 'ag-late', bridge: 'npaglt', subnet: '10.90.1.0/24' });
    const c = await host.createContainer('late1');
    assert.is(
      (await forward('netplumb-bridge', { socket: agent.socket, where: host, env: attachEnv('ADD', 'late1', c), stdin: JSON.stringify(conf) })).exitCode,
      0,
    );
    assert.ok(existsSync('/run/netplumb/agent/late1'), 'the ADD is kept');
    await c.destroy();
    const del = await forward('netplumb-bridge', { socket: agent.socket, where: host, env: attachEnv('DEL', 'late1', undefined), stdin: JSON.stringify(conf) });
    assert.is(del.exitCode, 0, del.stdout);
    assert.not.ok(existsSync('/run/netplumb/agent/late1'), 'forgotten once DELeted');
    assert.equal(await state(conf, 'npaglt'), nothing);
  } finally {
    await agent.stop();
  }
});

test('at start, attachments whose namespace went while no agent ran are released', async () => {
  const socket = socketPath();
  const first = await agentIn(host, { socket });
  const conf = bridgeConf({ name: 'ag-down', bridge: 'npagdn', subnet: '10.90.2.0/24', ipMasq: true });
  const c = await host.createContainer('down1');
  assert.is((await forward('netplumb-bridge', { socket, where: host, env: attachEnv('ADD', 'down1', c), stdin: JSON.stringify(conf) })).exitCode, 0);
  await first.stop('SIGKILL');
  await c.destroy();
  const second = await agentIn(host, { socket, args: ['--cleanup-grace', '600'] });
  try {
    const released = await eventsOf(second, (e) => e.event === 'cleanup');
    assert.is(released[0]?.container, 'down1', second.log());
    assert.equal(await state(conf, 'npagdn'), nothing);
  } finally {
    await second.stop();
  }
});

test.run();
