/**
 * The agent killed in the middle of an ADD, at every fault point the crash tests use: the forwarder answers
 * CNI error 11, and after a restart (the stale socket replaced) the runtime's DEL cleans what was half made and
 * a new ADD succeeds — nothing lost, nothing doubled. Then: 50 ADDs at once through one agent get 50 distinct
 * addresses, and requests for two networks are served side by side.
 * Oracles: `ip -j`, `nft -j` (through the storm fixture's attachmentsOf), the IPAM store's files.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { createHost, destroyAll, sandboxed, type Host } from '../../netns-harness/index.js';
import { bridgeConf } from '../fixtures/bridge-lab.js';
import { pool } from '../fixtures/cni-runtime.js';
import { agentIn, attachEnv, eventsOf, forward, socketPath } from '../fixtures/agent.js';
import { ADD_POINTS, attachmentsOf, storeFiles } from '../fixtures/storm.js';

await sandboxed();

let host: Host;
test.before(async () => {
  host = await createHost('agent-crash');
});
test.after(async () => {
  await destroyAll();
});

test(`the agent SIGKILLed at each of ${ADD_POINTS.length} points of an ADD: error 11, then DEL and ADD after a restart leave exactly one attachment`, async () => {
  const conf = bridgeConf({ name: 'ag-crash', bridge: 'npagcr', subnet: '10.86.0.0/24' });
  const store = join(conf.ipam.dataDir, 'ag-crash');
  const socket = socketPath();
  const stdin = JSON.stringify(conf);
  for (const point of ADD_POINTS) {
    const id = `cr-${point}`;
    const c = await host.createContainer(id);
    const fault = { NETPLUMB_FAULT: `kill:${point}` };
    const dying = await agentIn(host, { socket, env: fault });
    const r = await forward('netplumb-bridge', { socket, where: host, env: { ...attachEnv('ADD', id, c), ...fault }, stdin });
    assert.is(await dying.exited, 'SIGKILL', `${point}: the agent died there (${dying.log()})`);
    assert.is(r.exitCode, 1, `${point}: ${r.stdout}`);
    assert.is(r.json?.code, 11, `${point}: ${r.stdout}`);
    const agent = await agentIn(host, { socket });
    try {
      const del = await forward('netplumb-bridge', { socket, where: host, env: attachEnv('DEL', id, c), stdin });
      assert.is(del.exitCode, 0, `${point}: DEL after the crash: ${del.stdout}`);
      const none = await attachmentsOf(host, 'ag-crash', 'npagcr', store);
      assert.equal([none.veths, none.rules, none.elements, none.reservations, none.strays], [[], [], [], [], []], `${point}: the DEL cleaned everything`);
      const add = await forward('netplumb-bridge', { socket, where: host, env: attachEnv('ADD', id, c), stdin });
      assert.is(add.exitCode, 0, `${point}: ADD after the crash: ${add.stdout}`);
      const one = await attachmentsOf(host, 'ag-crash', 'npagcr', store);
      assert.equal(
        [one.veths, one.rules, one.elements, one.reservations, one.strays],
        [[`${id}/eth0`], [`${id}/eth0`], [`${id}/eth0`], [`${id}/eth0`], []],
        `${point}: one attachment`,
      );
      const addr = (await c.ip<any[]>('-4', 'addr', 'show', 'dev', 'eth0'))[0].addr_info.map((a: any) => `${a.local}/${a.prefixlen}`);
      assert.equal(addr, [add.json.ips[0].address]);
      assert.equal(storeFiles(store).problems, []);
      assert.equal(storeFiles(store).temps, []);
      assert.is((await forward('netplumb-bridge', { socket, where: host, env: attachEnv('DEL', id, c), stdin })).exitCode, 0);
      assert.is((await eventsOf(agent, (e) => e.event === 'request', 3)).length, 3, 'served by the restarted agent');
    } finally {
      await agent.stop();
      await c.destroy();
    }
  }
});

test('50 ADDs at once through the agent, on two networks: distinct addresses, every one where its Result says', async () => {
  const agent = await agentIn(host);
  try {
    const nets = [
      bridgeConf({ name: 'ag-par-a', bridge: 'npagpa', subnet: '10.87.0.0/24' }),
      bridgeConf({ name: 'ag-par-b', bridge: 'npagpb', subnet: '10.88.0.0/24' }),
    ];
    const items = Array.from({ length: 50 }, (_, i) => ({ id: `par${i}`, conf: nets[i % 2]! }));
    const ctrs = await pool(items, 8, (it) => host.createContainer(it.id));
    const results = await Promise.all(
      items.map((it, i) =>
        forward('netplumb-bridge', { socket: agent.socket, where: host, env: attachEnv('ADD', it.id, ctrs[i]), stdin: JSON.stringify(it.conf) }),
      ),
    );
    for (const [i, r] of results.entries()) assert.is(r.exitCode, 0, `${items[i]!.id}: ${r.stdout}${r.stderr}`);
    const addrs = results.map((r) => r.json.ips[0].address as string);
    assert.is(new Set(addrs).size, 50, 'distinct addresses');
    for (const [i, c] of ctrs.entries()) {
      const a = (await c.ip<any[]>('-4', 'addr', 'show', 'dev', 'eth0'))[0].addr_info.map((x: any) => `${x.local}/${x.prefixlen}`);
      assert.equal(a, [addrs[i]], items[i]!.id);
    }
    for (const conf of nets) {
      const seen = await attachmentsOf(host, conf.name, conf.name === 'ag-par-a' ? 'npagpa' : 'npagpb', join(conf.ipam.dataDir, conf.name));
      assert.is(seen.reservations.length, 25, `${conf.name}: 25 reservations`);
      assert.equal(seen.strays, []);
    }
    const served = await eventsOf(agent, (e) => e.event === 'request' && e.verb === 'ADD', 50);
    assert.is(served.length, 50, 'all through the agent');
  } finally {
    await agent.stop();
  }
});

test.run();
