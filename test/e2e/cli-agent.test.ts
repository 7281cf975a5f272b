/**
 * The netplumb command through netplumbd, as a user without root: the agent runs in a harness host with
 * `--group nogroup`, and the built CLI (dist/bin/netplumb.js) runs as nobody in that group, without a
 * capability, pointed at the agent's socket. network create, connect (by PID), inspect, disconnect and rm
 * succeed, the container reaches its gateway, and nothing is left; the same commands as that user with no
 * agent answering are refused naming the missing capability (or the unreadable state), and change nothing.
 * Oracles: `ip -j` in the host and the container, ping, the agent's log, the state directory.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sandboxed, createHost, ping, type AgentProcess, type Host, type RunResult } from '../../netns-harness/index.js';
import { ensurePluginBins, treeSnapshot } from '../fixtures/cni-runtime.js';
import { vethNames } from '../fixtures/bridge-lab.js';
import { agentIn, socketPath } from '../fixtures/agent.js';

await sandboxed();
ensurePluginBins();

const NETPLUMB = fileURLToPath(new URL('../../bin/netplumb.js', import.meta.url));
/** the agent's state: root's, 0700 (the in-process path cannot read it as nobody) */
const STATE = '/run/np-cli-agent-state';
/** nobody, a member of nogroup (the agent's --group), with no capability at all */
const AS_MEMBER = ['setpriv', '--reuid=65534', '--regid=65534', '--groups=65534', '--inh-caps=-all', '--bounding-set=-all'];
let host: Host;
let agent: AgentProcess;

/** `netplumb ARGS` in the host as the group member, talking to the agent at `socket`. */
const asMember = (socket: string, args: string[]): Promise<RunResult> =>
  host.exec([...AS_MEMBER, process.execPath, NETPLUMB, ...args], {
    env: { NETPLUMB_SOCKET: socket, NETPLUMB_STATE_DIR: STATE },
    check: false,
    timeoutMs: 60_000,
  });

async function ok(args: string[]): Promise<any> {
  const r = await asMember(agent.socket, [...args, '--json']);
  assert.is(r.exitCode, 0, `netplumb ${args.join(' ')}: ${r.stderr}\n${agent.log().slice(-2000)}`);
  return r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
}

test.before(async () => {
  host = await createHost('cliag');
  agent = await agentIn(host, { group: 'nogroup', env: { NETPLUMB_STATE_DIR: STATE } });
});
test.after(async () => {
  await agent?.stop();
  await host?.destroy();
});

test("as a member of the agent's group: create, connect, inspect, disconnect, rm carry traffic and leave nothing", async () => {
  const linksBefore = (await host.ip<any[]>('link', 'show')).map((l) => l.ifname).sort();
  const net = await ok(['network', 'create', 'grp', '--subnet', '10.92.0.0/24']);
  assert.is(net.gateway, '10.92.0.1');
  const c = await host.createContainer('member1');
  const ep = await ok(['connect', 'grp', String(c.pid), '--name', 'm1']);
  assert.match(ep.addresses[0], /^10\.92\.0\.\d+\/24$/);
  const seen = (await c.ip<any[]>('-4', 'addr', 'show', 'dev', ep.ifname))[0].addr_info.map((a: any) => `${a.local}/${a.prefixlen}`);
  assert.equal(seen, ep.addresses, 'the container has the address the agent gave');
  assert.ok((await ping(c, '10.92.0.1', { count: 2, interval: 0.2 })).ok, 'the container reaches its gateway');
  const [inspected] = await ok(['network', 'inspect', 'grp']);
  assert.equal(
    Object.values(inspected.containers).map((e: any) => [e.name, e.ipv4Address]),
    [['m1', ep.addresses[0]]],
  );

  await ok(['disconnect', 'grp', 'm1']);
  assert.equal(
    (await c.ip<any[]>('link', 'show')).map((l) => l.ifname),
    ['lo'],
    'the interface is gone',
  );
  await ok(['network', 'rm', 'grp']);
  assert.equal(await ok(['network', 'ls']), [], 'no network left');
  assert.equal(await vethNames(host), []);
  assert.equal((await host.ip<any[]>('link', 'show')).map((l) => l.ifname).sort(), linksBefore, 'the bridge is gone');
  assert.equal(existsSync(join(STATE, 'networks')) ? readdirSync(join(STATE, 'networks')) : [], [], 'no network in the state');

  const served = agent.events().filter((e) => e.event === 'request' && String(e.verb).includes('/v1/networks'));
  assert.ok(served.length >= 5, agent.log());
  assert.ok(
    served.every((e) => e.peer?.uid === 65534),
    'every request came from the group member',
  );
  await c.destroy();
});

test('the same user with no agent answering: each command is refused naming what is missing, nothing changes', async () => {
  // a root-made network and container, which the refused commands must leave as they are
  const c = await host.createContainer('member2');
  assert.ok(await ok(['network', 'create', 'kept', '--subnet', '10.93.0.0/24']));
  const before = { links: JSON.stringify(await host.ip('link', 'show')), state: treeSnapshot(STATE) };
  const noAgent = socketPath(); // a fresh path where nothing listens
  for (const [args, what] of [
    [['network', 'create', 'x'], /cannot write/],
    [['connect', 'kept', String(c.pid)], /CAP_NET_ADMIN and CAP_SYS_ADMIN/],
    [['network', 'inspect', 'kept'], /cannot read/],
    [['disconnect', 'kept', String(c.pid)], /CAP_NET_ADMIN and CAP_SYS_ADMIN/],
    [['network', 'rm', 'kept'], /CAP_NET_ADMIN and CAP_SYS_ADMIN/],
  ] as const) {
    const r = await asMember(noAgent, [...args]);
    assert.is(r.exitCode, 4, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, what);
    assert.match(r.stderr, /run netplumb as root, or start netplumbd/);
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  assert.equal({ links: JSON.stringify(await host.ip('link', 'show')), state: treeSnapshot(STATE) }, before, 'nothing changed');
  assert.equal(
    (await c.ip<any[]>('link', 'show')).map((l) => l.ifname),
    ['lo'],
  );
  await ok(['network', 'rm', 'kept']);
  await c.destroy();
});

test.run();
