import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  sandboxed,
  createHost,
  echoHelper,
  inNetns,
  ping,
  tcpRoundTrip,
  taggedProcesses,
  runId,
  run,
  ipJson,
  inSandbox,
  type Host,
} from '../../netns-harness/index.js';

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

/** Starts `argv` (an echo server) in `where`; resolves once it printed "listening", with a way to stop it and its other lines. */
async function listening(where: Host, argv: string[]): Promise<{ lines: string[]; stop: () => void }> {
  const [file, ...args] = inNetns(where.netnsPath, argv) as [string, ...string[]];
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${argv.join(' ')} did not listen within 10 s`)), 10_000);
    child.once('exit', (c) => reject(new Error(`${argv.join(' ')} exited (${c})`)));
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      lines.push(...d.split('\n').filter(Boolean));
      if (lines.includes('listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return { lines, stop: () => child.kill('SIGKILL') };
}

test('the echo helper: the compiled one and tcp-echo.js answer alike, each as server and as client', async () => {
  const compiled = await echoHelper();
  assert.is(compiled.length, 1, `compiled with cc (installed for the tests): ${compiled.join(' ')}`);
  const js = [process.execPath, fileURLToPath(new URL('../../netns-harness/tcp-echo.js', import.meta.url))];
  const host = await createHost('echo');
  try {
    const send = async (client: string[], ...args: string[]) => {
      const r = await host.exec([...client, ...args], { check: false });
      return { code: r.exitCode, out: r.stdout, err: r.stderr.replace(/^tcp-echo: .*(timed out)$/m, '$1').trim() };
    };
    for (const [name, server] of [
      ['compiled', compiled],
      ['tcp-echo.js', js],
    ] as const) {
      const tcp = await listening(host, [...server, 'serve', '--port', '7101']);
      const whoami = await listening(host, [...server, 'serve', '--port', '7102', '--whoami']);
      const udp = await listening(host, [...server, 'udp-serve', '--port', '7103']);
      try {
        for (const client of [compiled, js]) {
          const what = `${name} server, ${client === js ? 'tcp-echo.js' : 'compiled'} client`;
          assert.equal(await send(client, 'send', '--host', '127.0.0.1', '--port', '7101', '--message', 'a b\nc'), { code: 0, out: 'a b\nc', err: '' }, what);
          assert.equal(await send(client, 'send', '--host', '::1', '--port', '7101', '--message', 'v6'), { code: 0, out: 'v6', err: '' }, what);
          assert.equal(await send(client, 'send', '--host', '127.0.0.1', '--port', '7102'), { code: 0, out: '127.0.0.1', err: '' }, `${what}: whoami`);
          assert.equal(await send(client, 'udp-send', '--host', '127.0.0.1', '--port', '7103', '--message', 'u d'), { code: 0, out: 'u d', err: '' }, what);
          const refused = await send(client, 'send', '--host', '127.0.0.1', '--port', '7199');
          assert.ok(refused.code === 1 && refused.out === '' && /refused/i.test(refused.err), `${what}: refused: ${JSON.stringify(refused)}`);
          const late = await send(client, 'udp-send', '--host', '127.0.0.1', '--port', '7199', '--timeout', '300');
          assert.equal(late, { code: 1, out: '', err: 'timed out' }, `${what}: no answer`);
        }
        assert.equal(
          udp.lines.filter((l) => l.startsWith('recv')).map((l) => l.replace(/ \d+ /, ' PORT ')),
          ['recv 127.0.0.1 PORT u_d', 'recv 127.0.0.1 PORT u_d'],
          `${name}: one line per datagram, blanks as _`,
        );
      } finally {
        for (const s of [tcp, whoami, udp]) s.stop();
      }
    }
    const usage = await send(compiled, 'serve');
    assert.equal([usage.code, (await send(js, 'serve')).code], [2, 2], 'no port: usage');
  } finally {
    await host.destroy();
  }
});

test('named namespaces live in the sandbox, not on the machine', async () => {
  await run(['ip', 'netns', 'add', 'np-harness-probe']);
  assert.ok(existsSync('/run/netns/np-harness-probe'));
  await run(['ip', 'netns', 'del', 'np-harness-probe']);
  assert.not.ok(existsSync('/run/netns/np-harness-probe'));
});

test.run();
