/**
 * The network routes of netplumbd, driven by the netplumb command's own client (lib/cli agentOps): create, ls,
 * inspect, connect by PID, disconnect, rm, and the errors' statuses. The agent runs in the test process's own
 * (sandboxed) namespace, which plays the host. Oracles: `ip -j` in the container, the agent's log.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHost, destroyAll, sandboxed, startAgentProcess, type AgentProcess, type Host } from '../../netns-harness/index.js';
import { agentOps, type NetworkOps } from '../../lib/cli/network-ops.js';
import { AgentError, openAgent } from '../../lib/cli/agent-client.js';
import { ensurePluginBins } from '../fixtures/cni-runtime.js';
import { eventsOf, socketPath } from '../fixtures/agent.js';

await sandboxed();
ensurePluginBins();

let holder: Host;
let agent: AgentProcess;
let ops: NetworkOps;
test.before(async () => {
  holder = await createHost('agnets');
  agent = await startAgentProcess({ socket: socketPath(), env: { NETPLUMB_STATE_DIR: '/run/np-agent-networks' } });
  const client = await openAgent(agent.socket);
  assert.ok(client, agent.log());
  ops = agentOps(client!);
});
test.after(async () => {
  await agent.stop();
  await destroyAll();
});

const statusOf = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (e) {
    if (e instanceof AgentError) return [e.status, e.code];
    throw e;
  }
  throw new Error('expected the agent to refuse');
};

test('create, ls, connect by PID, inspect, disconnect and rm through the agent', async () => {
  const net = await ops.create({ name: 'agnet', subnet: '10.94.0.0/24' });
  assert.is(net.name, 'agnet');
  assert.equal(
    (await ops.list()).map((n) => [n.name, n.endpoints]),
    [['agnet', 0]],
  );
  const c = await holder.createContainer('agc1');
  const ep = await ops.connect('agnet', String(c.pid), {});
  const seen = (await c.ip<any[]>('-4', 'addr', 'show', 'dev', ep.ifname))[0].addr_info.map((a: any) => `${a.local}/${a.prefixlen}`);
  assert.equal(seen, ep.addresses, "the container has the endpoint's address");
  assert.ok(ep.addresses[0]!.startsWith('10.94.0.'));
  assert.is(Object.keys((await ops.inspect('agnet')).containers).length, 1);
  assert.equal(await statusOf(ops.create({ name: 'agnet' })), [409, 'ERR_EXISTS']);
  assert.equal(await statusOf(ops.inspect('nosuch')), [404, 'ERR_NOT_FOUND']);
  assert.equal(await statusOf(ops.create({ name: 'x', bogus: 1 } as never)), [400, 'ERR_INVALID_ARG_VALUE']);
  assert.equal(await statusOf(ops.remove('agnet', false)), [409, 'ERR_IN_USE'], 'rm refuses while attached');
  assert.equal(await statusOf(ops.connect('agnet', '3999999', {})), [404, 'ERR_NOT_FOUND'], 'no such process');
  assert.equal(await statusOf(ops.connect('agnet', '/etc/hostname', {})), [400, 'ERR_NOT_A_NETNS']);
  assert.equal(await statusOf(ops.connect('agnet', 'a b', {})), [400, 'ERR_INVALID_NAME']);
  await ops.disconnect('agnet', String(c.pid));
  assert.equal(await c.ip<any[]>('-4', 'addr', 'show', 'dev', ep.ifname).catch(() => []), [], 'the interface is gone');
  await ops.remove('agnet', false);
  assert.equal(await ops.list(), []);
  const served = await eventsOf(agent, (e) => e.event === 'request' && String(e.verb).includes('/v1/networks'), 8);
  assert.ok(served.length >= 8, agent.log());
});

test("allow rules through the agent: policy POST, GET, DELETE on an icc=false network, and the errors' statuses", async () => {
  await ops.create({ name: 'agpol', subnet: '10.95.0.0/24', icc: false });
  const [c1, c2] = [await holder.createContainer('agp1'), await holder.createContainer('agp2')];
  await ops.connect('agpol', String(c1.pid), { name: 'front' });
  await ops.connect('agpol', String(c2.pid), { name: 'back' });
  const rule = await ops.allow('agpol', { from: ['front'], to: 'back', ports: [{ protocol: 'tcp', port: 8080 }] });
  assert.equal([rule.fromNames, rule.toName], [['front'], 'back']);
  assert.equal(
    (await ops.listPolicy('agpol')).map((r) => r.id),
    [rule.id],
  );
  assert.equal(await statusOf(ops.allow('agpol', { from: ['ghost'], to: 'back', ports: [{ protocol: 'tcp', port: 1 }] })), [404, 'ERR_NOT_FOUND']);
  assert.equal(await statusOf(ops.allow('agpol', { from: ['front'], to: 'back', ports: [{ protocol: 'tcp', port: 65536 }] })), [400, 'ERR_INVALID_ARG_VALUE']);
  assert.equal(await statusOf(ops.allow('agpol', { from: ['front'], to: 'back', ports: [{ protocol: 'tcp', port: 8080 }] })), [409, 'ERR_EXISTS']);
  assert.equal((await ops.listPolicy('agpol')).length, 1, 'the refused rules changed nothing');
  assert.is((await ops.removeRule('agpol', rule.id)).id, rule.id);
  assert.equal(await ops.listPolicy('agpol'), []);
  await ops.remove('agpol', true);
});

test.run();
