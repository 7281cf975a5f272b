/**
 * netplumbd's socket and its protection: the API answers, the socket and its directory have the modes and
 * owners they should, a non-member is refused and nothing changes, a group member is served, unsafe or taken
 * paths stop the start, a stale socket is replaced, a caller in other namespaces runs in process, SIGTERM
 * drains. Oracles: stat(2), `ip -j`, the IPAM store's files, the agent's own log.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chownSync, chmodSync, lstatSync, mkdirSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { agentGet, createHost, destroyAll, run, sandboxed, startAgentProcess, type Host } from '../../netns-harness/index.js';
import { bridgeConf, vethNames } from '../fixtures/bridge-lab.js';
import { reservations, treeSnapshot } from '../fixtures/cni-runtime.js';
import { agentIn, AS_NOBODY, attachEnv, eventsOf, forward, socketPath } from '../fixtures/agent.js';

await sandboxed();

let host: Host;
test.before(async () => {
  host = await createHost('agent-host');
});
test.after(async () => {
  await destroyAll();
});

const addrOf = async (c: { ip: (...a: string[]) => Promise<any[]> }) =>
  ((await c.ip('-4', 'addr', 'show', 'dev', 'eth0'))[0]?.addr_info ?? []).map((a: any) => `${a.local}/${a.prefixlen}`);

test('status and health answer; an ADD through the forwarder is served by the agent and logged', async () => {
  const agent = await agentIn(host);
  try {
    const health = await agentGet(agent.socket, '/v1/health');
    assert.equal(health, { status: 200, body: { ok: true } });
    const conf = bridgeConf({ name: 'ag-status', bridge: 'npagst', subnet: '10.81.0.0/24' });
    const c = await host.createContainer('st1');
    const r = await forward('netplumb-bridge', { socket: agent.socket, where: host, env: attachEnv('ADD', 'st1', c), stdin: JSON.stringify(conf) });
    assert.is(r.exitCode, 0, r.stdout + r.stderr);
    assert.equal(await addrOf(c), [r.json.ips[0].address], 'the container has the address of the Result');
    const s = await agentGet(agent.socket, '/v1/status');
    assert.is(s.status, 200);
    assert.is(s.body.version, '0.1.0');
    assert.type(s.body.uptimeSeconds, 'number');
    assert.ok(s.body.networks.includes('ag-status'), JSON.stringify(s.body));
    assert.ok(s.body.attachments >= 1);
    const [req] = await eventsOf(agent, (e) => e.event === 'request' && e.verb === 'ADD');
    assert.ok(req, agent.log());
    assert.is(req!.container, 'st1');
    assert.is(req!.network, 'ag-status');
    assert.is(req!.outcome, 'ok');
    assert.type(req!.durationMs, 'number');
    assert.type(req!.id, 'string');
    const d = await forward('netplumb-bridge', { socket: agent.socket, where: host, env: attachEnv('DEL', 'st1', c), stdin: JSON.stringify(conf) });
    assert.is(d.exitCode, 0, d.stdout);
    assert.is((await eventsOf(agent, (e) => e.event === 'request', 2)).length, 2, 'both verbs went through the agent');
  } finally {
    await agent.stop();
  }
});

test('the socket is 0660 root:group in a 0750 directory; no TCP listener', async () => {
  const agent = await agentIn(host, { group: 'nogroup' });
  try {
    const st = lstatSync(agent.socket);
    assert.ok(st.isSocket());
    assert.is(st.mode & 0o777, 0o660);
    assert.is(st.uid, 0);
    assert.is(st.gid, 65534);
    const dir = lstatSync(dirname(agent.socket));
    assert.is(dir.mode & 0o777, 0o750);
    assert.is(dir.gid, 65534);
    const tcp = await run(['ss', '-H', '-t', '-l', '-n', '-p'], { netns: host.netnsPath });
    assert.not.match(tcp.stdout, `pid=${agent.process.pid},`, 'the agent listens on no TCP port');
  } finally {
    await agent.stop();
  }
  const def = await agentIn(host);
  try {
    assert.is(lstatSync(def.socket).gid, 0, 'default: root only');
  } finally {
    await def.stop();
  }
});

test('a non-member (nobody) is refused, logged, and nothing changes; also when the socket mode was loosened', async () => {
  const agent = await agentIn(host);
  try {
    const conf = bridgeConf({ name: 'ag-nobody', bridge: 'npagnb', subnet: '10.82.0.0/24' });
    const c = await host.createContainer('nb1');
    const before = { links: await vethNames(host), store: treeSnapshot(conf.ipam.dataDir), ctr: await c.ip('link', 'show') };
    // As installed: the socket's mode keeps nobody out (EACCES), so the forwarder runs the plugin itself,
    // which has no capability: error 107 and nothing done.
    const a = await forward('netplumb-bridge', {
      socket: agent.socket,
      where: host,
      env: attachEnv('ADD', 'nb1', c),
      stdin: JSON.stringify(conf),
      wrapper: AS_NOBODY,
    });
    assert.is(a.exitCode, 1);
    assert.is(a.json?.code, 107, a.stdout);
    // Loosened by mistake: the peer check refuses the connection's owner.
    chmodSync(dirname(agent.socket), 0o755);
    chmodSync(agent.socket, 0o666);
    const b = await forward('netplumb-bridge', {
      socket: agent.socket,
      where: host,
      env: attachEnv('ADD', 'nb1', c),
      stdin: JSON.stringify(conf),
      wrapper: AS_NOBODY,
    });
    assert.is(b.exitCode, 1);
    assert.is(b.json?.code, 107, b.stdout);
    assert.match(b.json.msg, 'uid 65534 may not use this agent');
    const refused = await eventsOf(agent, (e) => e.event === 'refused');
    assert.is(refused.length, 1, agent.log());
    assert.is(refused[0]!.peer.uid, 65534);
    assert.is(agent.events().filter((e) => e.event === 'request').length, 0, 'no request was served');
    assert.equal({ links: await vethNames(host), store: treeSnapshot(conf.ipam.dataDir), ctr: await c.ip('link', 'show') }, before, 'nothing changed');
  } finally {
    await agent.stop();
  }
});

test('a member of --group is served with the agent privilege', async () => {
  const agent = await agentIn(host, { group: 'nogroup' });
  try {
    const conf = bridgeConf({ name: 'ag-member', bridge: 'npagmb', subnet: '10.83.0.0/24' });
    const c = await host.createContainer('mb1');
    const nobodyInGroup = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
    const r = await forward('netplumb-bridge', {
      socket: agent.socket,
      where: host,
      env: attachEnv('ADD', 'mb1', c),
      stdin: JSON.stringify(conf),
      wrapper: nobodyInGroup,
    });
    assert.is(r.exitCode, 0, r.stdout + r.stderr);
    assert.equal(await addrOf(c), [r.json.ips[0].address]);
    const [served] = await eventsOf(agent, (e) => e.event === 'request' && e.verb === 'ADD');
    assert.is(served?.peer.uid, 65534);
    const d = await forward('netplumb-bridge', {
      socket: agent.socket,
      where: host,
      env: attachEnv('DEL', 'mb1', c),
      stdin: JSON.stringify(conf),
      wrapper: nobodyInGroup,
    });
    assert.is(d.exitCode, 0, d.stdout);
    assert.equal(reservations(join(conf.ipam.dataDir, 'ag-member')).size, 0);
  } finally {
    await agent.stop();
  }
});

test('a symlinked, foreign-owned, non-socket or taken path stops the start; a stale socket is replaced', async () => {
  const refusedStart = async (socket: string, pattern: string) => {
    const a = await startAgentProcess({ socket, netns: host.netnsPath });
    const code = await Promise.race([a.exited, sleep(10_000).then(() => 'still running')]);
    if (code === 'still running') await a.stop('SIGKILL');
    assert.is(code, 1, `${socket}: ${a.log()}`);
    assert.match(a.log(), pattern);
  };
  // A symlink where the socket should be (pointing at a live agent's socket, even).
  const live = await agentIn(host);
  try {
    const link = socketPath();
    mkdirSync(dirname(link), { recursive: true, mode: 0o750 });
    symlinkSync(live.socket, link);
    await refusedStart(link, 'is a symbolic link');
    // A symlinked directory.
    const dirLink = join(dirname(dirname(socketPath())), 'dirlink');
    symlinkSync(dirname(live.socket), dirLink);
    await refusedStart(join(dirLink, 'other.sock'), 'is a symbolic link');
    // Two agents on one socket.
    await refusedStart(live.socket, 'in use');
    assert.is((await agentGet(live.socket, '/v1/health')).status, 200, 'the first agent still serves');
  } finally {
    await live.stop();
  }
  // A socket owned by someone else, and a regular file.
  const foreign = await agentIn(host);
  await foreign.stop('SIGKILL'); // leaves its socket behind
  chownSync(foreign.socket, 65534, 65534);
  await refusedStart(foreign.socket, 'owned by uid 65534');
  const file = socketPath();
  mkdirSync(dirname(file), { recursive: true, mode: 0o750 });
  await run(['touch', file]);
  await refusedStart(file, 'not a socket');
  // A stale socket (its agent was killed) is replaced.
  const killed = await agentIn(host);
  await killed.stop('SIGKILL');
  assert.ok(lstatSync(killed.socket).isSocket(), 'the killed agent left its socket');
  const next = await agentIn(host, { socket: killed.socket });
  try {
    assert.is((await agentGet(next.socket, '/v1/health')).status, 200);
  } finally {
    await next.stop();
  }
});

test('a caller in another network namespace runs the plugin in process, where it is', async () => {
  const other = await createHost('agent-other');
  const agent = await agentIn(host);
  try {
    const conf = bridgeConf({ name: 'ag-elsewhere', bridge: 'npagel', subnet: '10.84.0.0/24' });
    const c = await other.createContainer('el1');
    const r = await forward('netplumb-bridge', { socket: agent.socket, where: other, env: attachEnv('ADD', 'el1', c), stdin: JSON.stringify(conf) });
    assert.is(r.exitCode, 0, r.stdout + r.stderr);
    assert.ok((await other.ip<any[]>('link', 'show', 'npagel')).length === 1, "the bridge is in the caller's namespace");
    assert.is((await host.ip<any[]>('link', 'show')).filter((l) => l.ifname === 'npagel').length, 0, "not in the agent's");
    assert.ok((await eventsOf(agent, (e) => e.event === 'misdirected')).length > 0, agent.log());
    assert.is(agent.events().filter((e) => e.event === 'request').length, 0);
  } finally {
    await agent.stop();
    await other.destroy();
  }
});

test('an agent in a mount namespace of its own (systemd ProtectSystem=) serves callers while the paths mean the same', async () => {
  mkdirSync('/var/run/netns', { recursive: true });
  const agent = await startAgentProcess({ socket: socketPath(), netns: host.netnsPath, wrapper: ['unshare', '--mount', '--propagation', 'slave'] });
  try {
    const conf = bridgeConf({ name: 'ag-mnt', bridge: 'npagmn', subnet: '10.89.0.0/24' });
    const c = await host.createContainer('mn1');
    const r = await forward('netplumb-bridge', { socket: agent.socket, where: host, env: attachEnv('ADD', 'mn1', c), stdin: JSON.stringify(conf) });
    assert.is(r.exitCode, 0, r.stdout + r.stderr);
    assert.is((await eventsOf(agent, (e) => e.event === 'request' && e.verb === 'ADD')).length, 1, 'served: the same view');
    // Now /var/run/netns is another directory for the agent: requests run in process, where the caller is.
    await run(['nsenter', `--mount=/proc/${agent.process.pid}/ns/mnt`, '--', 'mount', '-t', 'tmpfs', 'other-view', '/var/run/netns']);
    const d = await forward('netplumb-bridge', { socket: agent.socket, where: host, env: attachEnv('DEL', 'mn1', c), stdin: JSON.stringify(conf) });
    assert.is(d.exitCode, 0, d.stdout);
    assert.is((await eventsOf(agent, (e) => e.event === 'misdirected')).length, 1, agent.log());
    assert.is(agent.events().filter((e) => e.event === 'request').length, 1, 'the DEL was not served by the agent');
    assert.equal(reservations(join(conf.ipam.dataDir, 'ag-mnt')).size, 0, 'the in-process DEL released the address');
  } finally {
    await agent.stop();
  }
});

test('SIGTERM: the request in flight finishes, then the agent exits 0 and removes its socket', async () => {
  const agent = await agentIn(host);
  const conf = bridgeConf({ name: 'ag-drain', bridge: 'npagdr', subnet: '10.85.0.0/24' });
  const c = await host.createContainer('dr1');
  const add = forward('netplumb-bridge', { socket: agent.socket, where: host, env: attachEnv('ADD', 'dr1', c), stdin: JSON.stringify(conf) });
  // Bounded wait until the ADD is in flight (the status request counts itself).
  for (let i = 0; i < 2000; i++) {
    const s = await agentGet(agent.socket, '/v1/status').catch(() => undefined);
    if ((s?.body.inFlight ?? 0) >= 2 || agent.events().some((e) => e.event === 'request')) break;
    await sleep(2);
  }
  const code = await agent.stop('SIGTERM');
  const r = await add;
  assert.is(code, 0, agent.log());
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
  assert.equal(await addrOf(c), [r.json.ips[0].address]);
  assert.throws(() => lstatSync(agent.socket), /ENOENT/, 'socket removed');
  const events = agent.events().map((e) => e.event);
  assert.ok(events.indexOf('stop') > events.indexOf('stopping'), events.join(','));
});

test.run();
