/** Packets as the oracle: bounded pings and TCP round trips between namespaces. */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { renameSync, rmSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { inNetns, run } from './exec.js';
import type { NetnsHolder } from './holder.js';
import { RUN_ID_ENV, runId } from './run-id.js';

const TCP_ECHO = fileURLToPath(new URL('./tcp-echo.js', import.meta.url));
/** The same helper in C: its source in a checkout (a package ships none), compiled beside tcp-echo.js. */
const TCP_ECHO_SOURCE = fileURLToPath(new URL('../../netns-harness/tcp-echo.c', import.meta.url));
const TCP_ECHO_BIN = fileURLToPath(new URL('./tcp-echo', import.meta.url));

/** The compiled helper, compiled now if it is missing or older than its source; undefined without a C compiler. */
async function compiledEcho(): Promise<string | undefined> {
  let source: number;
  try {
    source = statSync(TCP_ECHO_SOURCE).mtimeMs;
  } catch {
    return undefined;
  }
  try {
    if (statSync(TCP_ECHO_BIN).mtimeMs >= source) return TCP_ECHO_BIN;
  } catch {
    /* not compiled yet */
  }
  // under a name of its own, renamed when complete: test files run this at the same time
  const tmp = `${TCP_ECHO_BIN}.${randomBytes(6).toString('hex')}.tmp`;
  const r = await run([process.env.CC || 'cc', '-O2', '-o', tmp, TCP_ECHO_SOURCE], { check: false, timeoutMs: 120_000 });
  if (r.exitCode === 0) {
    renameSync(tmp, TCP_ECHO_BIN);
    return TCP_ECHO_BIN;
  }
  rmSync(tmp, { force: true });
  return undefined;
}

let echoCommand: Promise<string[]> | undefined;

/**
 * The command line of the echo helper: tcp-echo.c compiled (about 1 ms of CPU a run, where a Node process takes
 * some 25: the suite starts hundreds of clients and servers), or tcp-echo.js where it cannot be compiled. Both
 * take the same arguments and print the same.
 */
export function echoHelper(): Promise<string[]> {
  echoCommand ??= compiledEcho().then((bin) => (bin === undefined ? [process.execPath, TCP_ECHO] : [bin]));
  return echoCommand;
}

export interface PingResult {
  ok: boolean;
  sent: number;
  received: number;
  output: string;
}

/** Pings `address` from inside `from`, `count` times (default 1), waiting at most `timeoutSec` per reply. */
export async function ping(from: NetnsHolder, address: string, opts: { count?: number; timeoutSec?: number; interval?: number } = {}): Promise<PingResult> {
  const count = opts.count ?? 1;
  const timeoutSec = opts.timeoutSec ?? 2;
  const argv = ['ping', '-n', '-q', '-c', String(count), '-W', String(timeoutSec), '-w', String(count * timeoutSec + 1)];
  if (opts.interval !== undefined) argv.push('-i', String(opts.interval));
  argv.push(address);
  const r = await from.exec(argv, { check: false, timeoutMs: (count * timeoutSec + 5) * 1000 });
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(r.stdout);
  const sent = m ? Number(m[1]) : 0;
  const received = m ? Number(m[2]) : 0;
  // With a deadline (-w), ping keeps sending until `count` replies are in: on a loaded machine, where replies
  // are late, more than `count` go out and come back. All asked-for replies arrived is what counts.
  return { ok: r.exitCode === 0 && received >= count, sent, received, output: r.stdout + r.stderr };
}

export interface EchoServer {
  readonly port: number;
  stop(): Promise<void>;
}

export interface UdpServer extends EchoServer {
  /** datagrams received so far: sender address, port and message */
  received(): { from: string; port: number; message: string }[];
}

/** Starts `tcp-echo ARGS` (or `command`) inside `where` and resolves once it prints "listening"; `lines` gets the rest. */
async function startServer(where: NetnsHolder, args: string[], what: string, lines: (line: string) => void = () => undefined, command?: string[]) {
  const [file, ...argv] = inNetns(where.netnsPath, command ?? [...(await echoHelper()), ...args]) as [string, ...string[]];
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, [RUN_ID_ENV]: runId() } });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what} in ${where.name} did not start within 5 s: ${stderr}`));
    }, 5000);
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line === 'listening') {
          clearTimeout(timer);
          // A server a failed test forgot to stop must not keep the process alive (its output still
          // arrives: unref only stops it from holding the event loop).
          child.unref();
          (child.stdout as unknown as { unref(): void }).unref();
          child.stderr!.destroy();
          resolve();
        } else lines(line);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} in ${where.name} exited (${code}): ${stderr}`));
    });
  });
  return async () => {
    child.ref();
    child.kill('SIGKILL');
    await exited;
  };
}

/**
 * Starts a TCP echo server inside `where` and resolves once it listens. With `whoami`, it answers every
 * connection with the client's address as the server sees it (to observe NAT) instead of echoing.
 */
export async function startEchoServer(where: NetnsHolder, port: number, host = '::', opts: { whoami?: boolean } = {}): Promise<EchoServer> {
  const stop = await startServer(where, ['serve', '--port', String(port), '--host', host, ...(opts.whoami ? ['--whoami'] : [])], 'echo server');
  return { port, stop };
}

/**
 * Starts a UDP server inside `where`: it records every datagram (`received()`) and answers it with the same
 * bytes, or with the sender's address as seen here when `whoami`.
 */
export async function startUdpServer(where: NetnsHolder, port: number, host = '::', opts: { whoami?: boolean } = {}): Promise<UdpServer> {
  const received: { from: string; port: number; message: string }[] = [];
  const stop = await startServer(where, ['udp-serve', '--port', String(port), '--host', host, ...(opts.whoami ? ['--whoami'] : [])], 'UDP server', (line) => {
    const m = /^recv (\S+) (\d+) (.*)$/.exec(line);
    if (m) received.push({ from: m[1]!, port: Number(m[2]), message: m[3]! });
  });
  return { port, stop, received: () => [...received] };
}

export interface EchoResult {
  ok: boolean;
  reply: string;
  error: string;
}

/**
 * Where a client runs: a holder, or any namespace file — e.g. a CNI_NETNS a plugin made refer to another
 * namespace, entered the way a runtime enters it (`{ netnsPath: '/run/netns/ctr-1' }`).
 */
export type ClientNetns = Pick<NetnsHolder, 'netnsPath'>;

async function send(mode: 'send' | 'udp-send', from: ClientNetns, address: string, port: number, message: string, timeoutMs: number): Promise<EchoResult> {
  const r = await run([...(await echoHelper()), mode, '--host', address, '--port', String(port), '--message', message, '--timeout', String(timeoutMs)], {
    netns: from.netnsPath,
    check: false,
    timeoutMs: timeoutMs + 5000,
  });
  return { ok: r.exitCode === 0 && r.stdout === message, reply: r.stdout, error: r.stderr.trim() };
}

export interface FrameCapture {
  /** the frames received so far, whole (Ethernet header first; a VLAN tag the kernel took off is not in them) */
  frames(): Buffer[];
  stop(): Promise<void>;
}

// An AF_PACKET socket for every protocol, bound to one interface: each frame received, as hex, one per line.
const CAPTURE = `
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
print('listening', flush=True)
while True:
    data, addr = s.recvfrom(65535)
    if addr[2] != socket.PACKET_OUTGOING:
        print(data.hex(), flush=True)
`;

/**
 * Captures every frame that arrives on `dev` inside `where` (python3, AF_PACKET), from when it resolves until
 * `stop()`: the oracle for what no socket of the stack would receive (a raw ethertype).
 */
export async function captureFrames(where: NetnsHolder, dev: string): Promise<FrameCapture> {
  const frames: Buffer[] = [];
  const stop = await startServer(where, [], 'frame capture', (line) => frames.push(Buffer.from(line, 'hex')), ['python3', '-c', CAPTURE, dev]);
  return { frames: () => [...frames], stop };
}

/** Connects from inside `from` (a holder or a namespace file) to address:port, sends `message` and returns what came back. */
export function tcpSend(from: ClientNetns, address: string, port: number, message = 'netplumb', timeoutMs = 3000): Promise<EchoResult> {
  return send('send', from, address, port, message, timeoutMs);
}

/** Sends one UDP datagram from inside `from` to address:port and waits for one answer. */
export function udpSend(from: ClientNetns, address: string, port: number, message = 'netplumb', timeoutMs = 3000): Promise<EchoResult> {
  return send('udp-send', from, address, port, message, timeoutMs);
}

/** A whole TCP round trip: echo server in `server`, client in `client` connecting to `address`. */
export async function tcpRoundTrip(server: NetnsHolder, client: NetnsHolder, address: string, port = 7777): Promise<EchoResult> {
  const srv = await startEchoServer(server, port);
  try {
    return await tcpSend(client, address, port);
  } finally {
    await srv.stop();
  }
}
