/** Packets as the oracle: bounded pings and TCP round trips between namespaces. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { inNetns, run } from './exec.js';
import type { NetnsHolder } from './holder.js';
import { RUN_ID_ENV, runId } from './run-id.js';

const TCP_ECHO = fileURLToPath(new URL('./tcp-echo.js', import.meta.url));

export interface PingResult {
  ok: boolean;
  sent: number;
  received: number;
  output: string;
}

/** Pings `address` from inside `from`, `count` times (default 1), waiting at most `timeoutSec` per reply. */
export async function ping(
  from: NetnsHolder,
  address: string,
  opts: { count?: number; timeoutSec?: number; interval?: number } = {},
): Promise<PingResult> {
  const count = opts.count ?? 1;
  const timeoutSec = opts.timeoutSec ?? 2;
  const argv = ['ping', '-n', '-q', '-c', String(count), '-W', String(timeoutSec), '-w', String(count * timeoutSec + 1)];
  if (opts.interval !== undefined) argv.push('-i', String(opts.interval));
  argv.push(address);
  const r = await from.exec(argv, { check: false, timeoutMs: (count * timeoutSec + 5) * 1000 });
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(r.stdout);
  const sent = m ? Number(m[1]) : 0;
  const received = m ? Number(m[2]) : 0;
  return { ok: r.exitCode === 0 && received === count, sent, received, output: r.stdout + r.stderr };
}

export interface EchoServer {
  readonly port: number;
  stop(): Promise<void>;
}

/** Starts a TCP echo server inside `where` and resolves once it listens. */
export async function startEchoServer(where: NetnsHolder, port: number, host = '::'): Promise<EchoServer> {
  const [file, ...args] = inNetns(where.netnsPath, [process.execPath, TCP_ECHO, 'serve', '--port', String(port), '--host', host]) as [
    string,
    ...string[],
  ];
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, [RUN_ID_ENV]: runId() } });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`echo server in ${where.name} did not start within 5 s: ${stderr}`));
    }, 5000);
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('listening')) {
        clearTimeout(timer);
        // A server a failed test forgot to stop must not keep the process alive.
        child.unref();
        child.stdout!.destroy();
        child.stderr!.destroy();
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`echo server in ${where.name} exited (${code}): ${stderr}`));
    });
  });
  return {
    port,
    async stop() {
      child.ref();
      child.kill('SIGKILL');
      await exited;
    },
  };
}

export interface EchoResult {
  ok: boolean;
  reply: string;
  error: string;
}

/** Connects from inside `from` to address:port, sends `message` and returns what came back. */
export async function tcpSend(from: NetnsHolder, address: string, port: number, message = 'netplumb', timeoutMs = 3000): Promise<EchoResult> {
  const r = await run(
    [process.execPath, TCP_ECHO, 'send', '--host', address, '--port', String(port), '--message', message, '--timeout', String(timeoutMs)],
    { netns: from.netnsPath, check: false, timeoutMs: timeoutMs + 5000 },
  );
  return { ok: r.exitCode === 0 && r.stdout === message, reply: r.stdout, error: r.stderr.trim() };
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
