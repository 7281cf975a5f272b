/**
 * The compiled forwarder (dist/plugins/netplumb-X → netplumb-forward) against agents that misbehave on
 * purpose — a fake agent in this process that reads slowly, answers a byte at a time, dies mid-answer or says
 * "run it yourself" — and against a socket with nothing behind it. The oracle for "runs in process" is the
 * Node plugin executable itself (netplumb-X.cjs) run with the same environment and stdin.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { run, sandboxed, startAgentProcess } from '../../netns-harness/index.js';
import { ensurePluginBins, NETPLUMB_BIN } from '../fixtures/cni-runtime.js';
import { eventsOf } from '../fixtures/agent.js';

await sandboxed();
ensurePluginBins();

const dir = '/run/np-forwarder-test';
mkdirSync(dir, { recursive: true });
let n = 0;
const freshPath = () => join(dir, `a${++n}.sock`);

interface Ran {
  exitCode: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs `file` with exactly `env` (plus PATH), stdin written in `chunk`-byte pieces with a pause between. */
function exec(file: string, env: Record<string, string>, stdin: Buffer, chunk = stdin.length || 1, pauseMs = 0): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, [], { env: { PATH: process.env.PATH, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d) => (err += d));
    child.stdin.on('error', () => undefined);
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ exitCode: code ?? -1, stdout: Buffer.concat(out), stderr: err });
    });
    void (async () => {
      for (let i = 0; i < stdin.length; i += chunk) {
        if (!child.stdin.write(stdin.subarray(i, i + chunk))) await new Promise((r) => child.stdin.once('drain', r));
        if (pauseMs) await sleep(pauseMs);
      }
      child.stdin.end();
    })();
  });
}

const forwarder = (env: Record<string, string>, stdin: Buffer, chunk?: number, pauseMs?: number) =>
  exec(join(NETPLUMB_BIN, 'netplumb-bridge'), env, stdin, chunk, pauseMs);
const inProcess = (env: Record<string, string>, stdin: Buffer) => exec(join(NETPLUMB_BIN, 'netplumb-bridge.cjs'), env, stdin);

interface Seen {
  head: string;
  body: Buffer;
}

/** A fake agent: reads one whole request (head + Content-Length body), then calls `answer`. */
async function fakeAgent(answer: (sock: Socket, seen: Seen) => void | Promise<void>, readPauseMs = 0): Promise<{ path: string; server: Server; seen: Seen[] }> {
  const path = freshPath();
  const seen: Seen[] = [];
  const server = createServer((sock) => {
    let buf = Buffer.alloc(0);
    let done = false;
    sock.on('data', (d: Buffer) => {
      if (done) return;
      buf = Buffer.concat([buf, d]);
      if (readPauseMs) {
        sock.pause();
        setTimeout(() => sock.resume(), readPauseMs);
      }
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString();
      const len = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length - end - 4 < len) return;
      done = true;
      const s = { head, body: buf.subarray(end + 4, end + 4 + len) };
      seen.push(s);
      void answer(sock, s);
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(path, r));
  return { path, server, seen };
}

const answerHead = (status: number, body: Buffer, extra: Record<string, string> = {}) =>
  Buffer.from(
    `HTTP/1.1 ${status} X\r\ncontent-length: ${body.length}\r\n${Object.entries(extra)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('')}\r\n`,
  );

const badConf = Buffer.from(JSON.stringify({ cniVersion: '0.4.0', name: 'not a valid/name', type: 'netplumb-bridge' }));
const addEnv = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'fw1', CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' };

test('an answer written one byte at a time is relayed exactly: stdout, stderr, exit status', async () => {
  const body = Buffer.from('{\n    "cniVersion": "1.1.0",\n    "code": 7,\n    "msg": "zażółć \\u0000 ok"\n}\n');
  const agent = await fakeAgent(async (sock) => {
    const all = Buffer.concat([
      answerHead(200, body, { 'x-netplumb-exit-status': '1', 'x-netplumb-stderr': Buffer.from('from the agent\n').toString('base64') }),
      body,
    ]);
    for (let i = 0; i < all.length; i++) {
      sock.write(all.subarray(i, i + 1));
      await sleep(0);
    }
    sock.end();
  });
  try {
    const r = await forwarder({ ...addEnv, NETPLUMB_AGENT_SOCKET: agent.path }, badConf);
    assert.is(r.exitCode, 1);
    assert.ok(r.stdout.equals(body), r.stdout.toString());
    assert.is(r.stderr, 'from the agent\n');
  } finally {
    agent.server.close();
  }
});

test('a 10 MiB stdin, fed in pieces, reaches a slowly reading agent whole, with the environment', async () => {
  const stdin = Buffer.alloc(10 * 1024 * 1024, 'x');
  const agent = await fakeAgent((sock) => {
    sock.end(Buffer.concat([answerHead(200, Buffer.from('{}\n'), { 'x-netplumb-exit-status': '0' }), Buffer.from('{}\n')]));
  }, 2);
  try {
    const r = await forwarder({ ...addEnv, NETPLUMB_AGENT_SOCKET: agent.path }, stdin, 100_000, 1);
    assert.is(r.exitCode, 0, r.stderr);
    assert.is(r.stdout.toString(), '{}\n');
    const { head, body } = agent.seen[0]!;
    assert.match(head, /^POST \/v1\/cni\/netplumb-bridge HTTP\/1\.1\r\n/);
    const envLen = Number(/x-netplumb-env-length: (\d+)/i.exec(head)![1]);
    const env = body.subarray(0, envLen).toString().split('\0');
    assert.ok(env.includes('CNI_COMMAND=ADD') && env.includes('CNI_CONTAINERID=fw1'), env.join(' '));
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    assert.is(body.length - envLen, stdin.length);
    assert.is(sha(body.subarray(envLen)), sha(stdin));
  } finally {
    agent.server.close();
  }
});

test("an agent that dies mid-answer, or closes without one: CNI error 11 in the configuration's version", async () => {
  const cut = await fakeAgent((sock) => {
    sock.write(answerHead(200, Buffer.alloc(100), { 'x-netplumb-exit-status': '0' }));
    sock.write('{"cniVersion"');
    setTimeout(() => sock.destroy(), 20);
  });
  const silent = await fakeAgent((sock) => {
    sock.destroy();
  });
  const headOnly = await fakeAgent((sock) => {
    sock.write('HTTP/1.1 200 OK\r\ncontent-le');
    sock.destroy();
  });
  try {
    for (const a of [cut, silent, headOnly]) {
      const r = await forwarder({ ...addEnv, NETPLUMB_AGENT_SOCKET: a.path }, badConf);
      assert.is(r.exitCode, 1);
      const j = JSON.parse(r.stdout.toString());
      assert.is(j.code, 11, r.stdout.toString());
      assert.is(j.cniVersion, '0.4.0');
      assert.match(r.stderr, 'ended the connection before answering');
    }
  } finally {
    for (const a of [cut, silent, headOnly]) a.server.close();
  }
});

test('no agent — a socket file with nothing behind it, no file, a regular file — runs the plugin in process', async () => {
  const inproc = await inProcess(addEnv, badConf);
  assert.is(inproc.exitCode, 1);
  assert.is(JSON.parse(inproc.stdout.toString()).code, 7, 'the oracle is an error about the configuration');
  const dead = freshPath();
  // bound, never listening: connect(2) is refused
  await run(['python3', '-c', 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])', dead]);
  const file = freshPath();
  writeFileSync(file, '');
  for (const path of [dead, freshPath(), file, '']) {
    const r = await forwarder({ ...addEnv, NETPLUMB_AGENT_SOCKET: path }, badConf, 7, 1);
    assert.is(r.exitCode, inproc.exitCode, path);
    assert.ok(r.stdout.equals(inproc.stdout), `${path}: ${r.stdout}`);
  }
});

test('an agent that says "run it yourself" (421) gets the stdin it already read passed on to the Node plugin', async () => {
  const inproc = await inProcess(addEnv, badConf);
  const b = Buffer.from('{"message":"elsewhere"}');
  const agent = await fakeAgent((sock) => {
    sock.end(Buffer.concat([answerHead(421, b), b]));
  });
  try {
    const r = await forwarder({ ...addEnv, NETPLUMB_AGENT_SOCKET: agent.path }, badConf);
    assert.is(agent.seen.length, 1, 'the agent was asked');
    assert.is(r.exitCode, 1);
    assert.ok(r.stdout.equals(inproc.stdout), r.stdout.toString());
  } finally {
    agent.server.close();
  }
});

test('through the real agent, a 10 MiB configuration and a bad one get the in-process answers byte for byte', async () => {
  const agent = await startAgentProcess({ socket: join(dir, 'real', 'netplumbd.sock') });
  try {
    for (const stdin of [Buffer.alloc(10 * 1024 * 1024, ' '), badConf, Buffer.from('{"cniVersion":"9.9.9","name":"x"}'), Buffer.from('')]) {
      const inproc = await inProcess(addEnv, stdin);
      const r = await forwarder({ ...addEnv, NETPLUMB_AGENT_SOCKET: agent.socket }, stdin);
      assert.is(r.exitCode, inproc.exitCode);
      assert.ok(r.stdout.equals(inproc.stdout), `${r.stdout} vs ${inproc.stdout}`);
    }
    assert.is((await eventsOf(agent, (e) => e.event === 'request', 4)).length, 4, agent.log());
  } finally {
    await agent.stop();
  }
});

test.run();
