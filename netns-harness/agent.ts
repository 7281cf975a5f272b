/**
 * netplumbd for tests and benchmarks: started from dist/bin/netplumbd in a namespace of the lab (a Host's, or the
 * sandbox's own), on a socket under /run (the sandbox's private tmpfs), stopped by signal. With
 * NETPLUMB_TEST_AGENT=1 in the environment, `agentSocketFor()` gives every namespace a plugin runs in its own
 * agent (started on first use, killed when the namespace's holder exits), and the harness's plugin executors
 * point the forwarder at it: the same tests then run through the agent.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, readlinkSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { inNetns } from './exec.js';
import type { NetnsHolder } from './holder.js';
import { RUN_ID_ENV, runId } from './run-id.js';
import { assertSandbox } from './sandbox.js';

/** dist/bin/netplumbd */
export const NETPLUMBD = resolve(dirname(fileURLToPath(import.meta.url)), '../bin/netplumbd');
export const TEST_AGENT_ENV = 'NETPLUMB_TEST_AGENT';

export interface AgentProcessOptions {
  /** the socket path */
  socket: string;
  /** a namespace file to run the agent in (default: the caller's) */
  netns?: string | undefined;
  /** --group */
  group?: string | undefined;
  /** argv run in front of netplumbd (`unshare --mount …`) */
  wrapper?: string[];
  /** more arguments for netplumbd (`--cleanup-grace 0.2`) */
  args?: string[];
  /** another netplumbd to run (an installed package's); default dist/bin/netplumbd */
  executable?: string;
  env?: Record<string, string>;
}

export interface AgentProcess {
  readonly socket: string;
  readonly process: ChildProcess;
  /** everything it wrote to stderr so far (its JSON log) */
  readonly log: () => string;
  /** the log's JSON events so far */
  readonly events: () => Array<Record<string, any>>;
  /** resolves with the exit code (or signal name) when it exits */
  readonly exited: Promise<number | string>;
  /** sends `signal` and waits (bounded) for the exit */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/** One GET on the agent's socket; resolves with the status and parsed JSON, rejects on a connection error. */
export function agentGet(socket: string, path: string, timeoutMs = 5000): Promise<{ status: number; body: any }> {
  return new Promise((res, rej) => {
    const req = request({ socketPath: socket, path, method: 'GET', timeout: timeoutMs, headers: { host: 'netplumb' } }, (r) => {
      let data = '';
      r.setEncoding('utf8');
      r.on('data', (d) => (data += d));
      r.on('end', () => {
        try {
          res({ status: r.statusCode ?? 0, body: JSON.parse(data) });
        } catch {
          res({ status: r.statusCode ?? 0, body: data });
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', rej);
    req.end();
  });
}

/**
 * Starts netplumbd and waits (bounded) until it answers /v1/health, or until it exits (a refused start:
 * then `exited` is settled and the log says why). Never throws for a refused start.
 */
export async function startAgentProcess(o: AgentProcessOptions): Promise<AgentProcess> {
  assertSandbox('netns-harness: starting netplumbd');
  const netplumbd = o.executable ?? NETPLUMBD;
  if (!existsSync(netplumbd)) throw new Error(`${netplumbd} is missing: run npm run build`);
  const argv = inNetns(o.netns, [...(o.wrapper ?? []), netplumbd, '--socket', o.socket, ...(o.group ? ['--group', o.group] : []), ...(o.args ?? [])]);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...o.env, [RUN_ID_ENV]: runId() } });
  let log = '';
  child.stderr!.setEncoding('utf8');
  const copyTo = process.env.NETPLUMB_TEST_AGENT_LOG; // a file that collects every agent's log (checked by hand)
  child.stderr!.on('data', (d: string) => {
    log += d;
    try {
      if (copyTo) appendFileSync(copyTo, d);
    } catch {
      /* best effort (a user namespace may not write it) */
    }
  });
  const exited = new Promise<number | string>((res) => child.once('exit', (c, s) => res(c ?? s ?? -1)));
  let done = false;
  void exited.then(() => (done = true));
  for (let i = 0; i < 400 && !done; i++) {
    try {
      if ((await agentGet(o.socket, '/v1/health', 1000)).status === 200) break;
    } catch {
      /* not listening yet */
    }
    await sleep(25);
  }
  const events = () =>
    log
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, any>);
  return {
    socket: o.socket,
    process: child,
    log: () => log,
    events,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (!done) child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
}

const perNamespace = new Map<string, Promise<AgentProcess>>();

/**
 * With NETPLUMB_TEST_AGENT=1: the socket of the agent serving plugins run in `where` (a holder's namespace, a
 * namespace file, or the caller's), started on first use. Otherwise undefined (plugins run in process).
 */
export async function agentSocketFor(where?: NetnsHolder | string): Promise<string | undefined> {
  if (process.env[TEST_AGENT_ENV] !== '1') return undefined;
  const holder = typeof where === 'string' ? undefined : where;
  const netns = typeof where === 'string' ? where : holder?.netnsPath;
  const key = readlinkSync(netns ?? '/proc/self/ns/net');
  let p = perNamespace.get(key);
  if (p === undefined) {
    const id = key.replace(/\D/g, '');
    p = startAgentProcess({ socket: `/run/netplumb-test-agents/${id}/netplumbd.sock`, netns });
    perNamespace.set(key, p);
    const agent = await p;
    agent.process.unref();
    (agent.process.stderr as unknown as { unref?: () => void }).unref?.();
    // The agent would keep the namespace alive: it goes with the holder.
    holder?.process.once('exit', () => agent.process.kill('SIGKILL'));
    void agent.exited.then(() => perNamespace.delete(key));
  }
  return (await p).socket;
}

/** With NETPLUMB_TEST_AGENT=1: the agent now serving `where` (started by agentSocketFor), if any. */
export function runningAgent(where?: NetnsHolder | string): Promise<AgentProcess> | undefined {
  const netns = typeof where === 'string' ? where : where?.netnsPath;
  return perNamespace.get(readlinkSync(netns ?? '/proc/self/ns/net'));
}
