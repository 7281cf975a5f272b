import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readlinkSync } from 'node:fs';
import { sandboxed, createHost, ping, tcpRoundTrip, taggedProcesses, runId, run, ipJson, inSandbox } from '../../netns-harness/index.js';

await sandboxed();

/** The sandbox's own namespace plays "the machine" for the harness: nothing may change there either. */
async function labState() {
  const links = await ipJson<any[]>(['link', 'show']);
  const netns = (await run(['ip', 'netns', 'list'])).stdout;
  return { links: links.map((l) => `${l.ifname} ${l.link_type}`).join(','), netns, procs: taggedProcesses(runId()) };
}

test('the sandbox is a private world', async () => {
  assert.ok(inSandbox());
  assert.is(process.pid, 1);
  assert.is.not(readlinkSync('/proc/self/ns/net'), readlinkSync('/proc/1/ns/net').replace(/./, '') || 'x');
  const links = await ipJson<any[]>(['link', 'show']);
  assert.equal(
    links.map((l) => l.ifname),
    ['lo'],
    'a fresh network namespace has only lo',
  );
});

test('a host and two containers linked by a veth pair ping each other, then leave nothing', async () => {
  const before = await labState();
  const host = await createHost('h1');
  const a = await host.createContainer('a');
  const b = await host.createContainer('b');
  const ids = new Set([host.netnsId, a.netnsId, b.netnsId, readlinkSync('/proc/self/ns/net')]);
  assert.is(ids.size, 4, 'host, containers and sandbox are four distinct namespaces');

  // Built with iproute2 only: the harness must not depend on the library it tests.
  await host.exec(['ip', 'link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb']);
  await host.exec(['ip', 'link', 'set', 'va', 'netns', String(a.pid)]);
  await host.exec(['ip', 'link', 'set', 'vb', 'netns', String(b.pid)]);
  for (const [c, addr] of [
    [a, '10.99.0.1/24'],
    [b, '10.99.0.2/24'],
  ] as const) {
    const dev = c === a ? 'va' : 'vb';
    await c.exec(['ip', 'link', 'set', dev, 'name', 'eth0']);
    await c.exec(['ip', 'addr', 'add', addr, 'dev', 'eth0']);
    await c.exec(['ip', 'link', 'set', 'eth0', 'up']);
    await c.exec(['ip', 'link', 'set', 'lo', 'up']);
  }
  const hostLinks = await host.ip<any[]>('link', 'show');
  assert.equal(
    hostLinks.map((l) => l.ifname),
    ['lo'],
    'both veth ends left the host',
  );

  const p1 = await ping(a, '10.99.0.2', { count: 2, interval: 0.2 });
  assert.ok(p1.ok, p1.output);
  const p2 = await ping(b, '10.99.0.1');
  assert.ok(p2.ok, p2.output);
  const unreachable = await ping(a, '10.99.0.3', { timeoutSec: 1 });
  assert.not.ok(unreachable.ok, 'a ping to nobody fails: the oracle can fail');

  const echo = await tcpRoundTrip(b, a, '10.99.0.2', 7001);
  assert.ok(echo.ok, echo.error);

  const pids = [host.pid, a.pid, b.pid];
  await host.destroy();
  for (const pid of pids) assert.not.ok(existsSync(`/proc/${pid}`), `process ${pid} is gone`);
  assert.equal(await labState(), before);
});

test('named namespaces live in the sandbox, not on the machine', async () => {
  await run(['ip', 'netns', 'add', 'np-harness-probe']);
  assert.ok(existsSync('/run/netns/np-harness-probe'));
  await run(['ip', 'netns', 'del', 'np-harness-probe']);
  assert.not.ok(existsSync('/run/netns/np-harness-probe'));
});

test.run();
