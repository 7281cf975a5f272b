/**
 * netplumbd and the nftables ruleset it shares with everyone else: its ADDs may leave out the skeleton and the
 * bridge's registration while only its own commits happened since (lib/firewall/tracked.ts), so a change by
 * anyone else — a flushed chain, a deleted element or table, `nft flush ruleset` — must make its next ADD write
 * them whole again. Oracle: `nft -j list` in the agent's namespace (nftSkeleton, nftAttachments), the agent's log
 * (which, with NETPLUMB_TIMING=1, names each request's steps).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHost, destroyAll, sandboxed, type Container, type Host } from '../../netns-harness/index.js';
import { bridgeConf, nftAttachments, nftSkeleton, nftTable } from '../fixtures/bridge-lab.js';
import { agentIn, attachEnv, eventsOf, forward } from '../fixtures/agent.js';

await sandboxed();

let host: Host;
test.before(async () => {
  host = await createHost('agent-fw');
});
test.after(async () => {
  await destroyAll();
});

test("after anyone else's change to the ruleset, the agent's next ADD writes the skeleton and the bridge's registration whole", async () => {
  // NETPLUMB_TIMING=1: each request's log line carries the steps it went through (for benchmarks)
  const agent = await agentIn(host, { env: { NETPLUMB_TIMING: '1' } });
  const containers = new Map<string, Container>();
  let requests = 0;
  const conf = bridgeConf({ name: 'ag-fw', bridge: 'npagfw', subnet: '10.82.0.0/24', isGateway: true, ipMasq: true, macspoofchk: true });
  const cni = async (command: 'ADD' | 'DEL', id: string) => {
    let c = containers.get(id);
    if (!c) containers.set(id, (c = await host.createContainer(id)));
    const r = await forward('netplumb-bridge', { socket: agent.socket, where: host, env: attachEnv(command, id, c), stdin: JSON.stringify(conf) });
    assert.is(r.exitCode, 0, `${command} ${id}: ${r.stdout} ${r.stderr}`);
    requests++;
  };
  /** how many per-attachment chains nft lists */
  const chainsOf = async () => (await nftAttachments(host)).chains.length;
  try {
    await cni('ADD', 'fw1');
    const whole = await nftSkeleton(host.netnsPath);
    const perAttachment = await chainsOf();
    assert.ok(perAttachment >= 2, 'masquerade and spoof chains');
    await cni('ADD', 'fw2');
    assert.equal(await nftSkeleton(host.netnsPath), whole, "an ADD after the agent's own commit only");
    assert.is(await chainsOf(), 2 * perAttachment);
    await cni('DEL', 'fw2');
    assert.equal(await nftSkeleton(host.netnsPath), whole, 'a DEL');
    const isolation = (await nftTable('inet', host.netnsPath)).find((o) => /^b-.*-from$/.test(o.chain?.name ?? ''))?.chain.name;
    assert.ok(isolation, 'the bridge has its isolation chain');

    // Someone else's change, then an ADD (after a DEL of the same container, or of a new one).
    const changes: [string[], 'new' | 'again'][] = [
      [['flush', 'chain', 'inet', 'netplumb', 'postrouting'], 'new'],
      [['delete', 'element', 'inet', 'netplumb', 'bridges', '{ npagfw }'], 'again'],
      [['flush', 'chain', 'inet', 'netplumb', isolation], 'again'],
      [['delete', 'table', 'inet', 'netplumb'], 'new'],
      [['flush', 'ruleset'], 'new'],
    ];
    for (const [i, [argv, how]] of changes.entries()) {
      await host.exec(['nft', ...argv]);
      assert.not.equal(await nftSkeleton(host.netnsPath), whole, `nft ${argv.join(' ')} changed it`);
      const id = how === 'new' ? `fw-new${i}` : 'fw2';
      if (how === 'again') await cni('DEL', id);
      const before = await chainsOf();
      await cni('ADD', id);
      assert.equal(await nftSkeleton(host.netnsPath), whole, `the ADD after nft ${argv.join(' ')}`);
      assert.is(await chainsOf(), before + perAttachment, `the ADD after nft ${argv.join(' ')} made its own chains`);
      await cni('DEL', id);
    }
    const served = await eventsOf(agent, (e) => e.event === 'request' && e.outcome === 'ok', requests);
    assert.is(served.length, requests, 'the agent served every request');
    const stepsOf = (verb: string) => Object.keys(served.find((e) => e.verb === verb)?.steps ?? {});
    for (const step of ['preflight', 'ipam', 'veth', 'firewall', 'port-up', 'record']) assert.ok(stepsOf('ADD').includes(step), `ADD step ${step} logged`);
    for (const step of ['firewall', 'veth', 'ipam']) assert.ok(stepsOf('DEL').includes(step), `DEL step ${step} logged`);
  } finally {
    await agent.stop();
  }
});

test.run();
