/**
 * Hosts and containers of the lab. Each is a real long-lived process (`sleep infinity`) that sits alone in
 * a fresh network namespace and holds it: a host plays a machine's root namespace, a container is what
 * `docker run --net=none` leaves behind. Nothing else holds the namespace, so killing the process (or the
 * sandbox's PID 1) frees it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { ipJson, run, type RunOptions, type RunResult } from './exec.js';
import { applyHostState } from './host-state.js';
import { RUN_ID_ENV, runId } from './run-id.js';
import { assertSandbox } from './sandbox.js';

const live = new Set<NetnsHolder>();
const START_TIMEOUT_MS = 30_000;

/**
 * Resolves once `child` runs the program `comm` (as /proc/PID/comm names it): for a chain such as
 * `nsenter … unshare -n sleep`, the moment every namespace change before the last exec is done. Fails if the
 * child exits first; kills it and fails if that takes longer than the (generous) bound, since on a loaded
 * 2-core machine a few execs can take seconds.
 */
export async function waitForExec(child: ChildProcess, comm: string, what = comm, timeoutMs = START_TIMEOUT_MS): Promise<void> {
  let onExit: (() => void) | undefined;
  const failed = new Promise<never>((_, reject) => {
    onExit = () => reject(new Error(`netns-harness: ${what} exited early (status ${child.exitCode ?? child.signalCode})`));
    child.once('error', reject);
    child.once('exit', onExit);
  });
  failed.catch(() => undefined);
  try {
    for (const deadline = Date.now() + timeoutMs; Date.now() < deadline;) {
      await Promise.race([sleep(5), failed]);
      try {
        if (readFileSync(`/proc/${child.pid}/comm`, 'utf8').trim() === comm) return;
      } catch {
        /* not yet visible */
      }
    }
  } finally {
    child.off('exit', onExit!);
  }
  child.kill('SIGKILL');
  throw new Error(`netns-harness: ${what} did not start within ${timeoutMs / 1000} s`);
}

export interface HolderOptions {
  /** bring `lo` up in the new namespace (default: true for hosts, false for containers) */
  loopbackUp?: boolean;
}

export class NetnsHolder {
  #exited = false;
  readonly #exit: Promise<void>;

  protected constructor(
    readonly name: string,
    readonly process: ChildProcess,
  ) {
    this.#exit = new Promise((resolve) => {
      process.once('exit', () => {
        this.#exited = true;
        live.delete(this);
        resolve();
      });
    });
    live.add(this);
  }

  get pid(): number {
    return this.process.pid!;
  }

  /** The namespace file a library or runtime can open: `/proc/PID/ns/net`. */
  get netnsPath(): string {
    return `/proc/${this.pid}/ns/net`;
  }

  /** The namespace's identity (inode), as `readlink /proc/PID/ns/net` prints it. */
  get netnsId(): string {
    return readlinkSync(this.netnsPath);
  }

  get alive(): boolean {
    return !this.#exited;
  }

  /** Runs a program inside this namespace. */
  exec(argv: readonly string[], opts: Omit<RunOptions, 'netns'> = {}): Promise<RunResult> {
    return run(argv, { ...opts, netns: this.netnsPath });
  }

  /** `ip -j ARGS` inside this namespace, parsed. */
  ip<T = any>(...args: string[]): Promise<T> {
    return ipJson<T>(args, this.netnsPath);
  }

  /** Reads a sysctl of this namespace (`net.ipv4.ip_forward`). */
  async sysctl(key: string): Promise<string> {
    const r = await this.exec(['cat', `/proc/sys/${key.replaceAll('.', '/')}`]);
    return r.stdout.trim();
  }

  /** Writes a sysctl of this namespace with sysctl(8) (`sysctl -w net.ipv4.ip_forward=0`). */
  async setSysctl(key: string, value: string | number): Promise<void> {
    await this.exec(['sysctl', '-qw', `${key}=${value}`]);
  }

  /** Kills the holder; the namespace goes when nothing else holds it. */
  async destroy(): Promise<void> {
    if (!this.#exited) {
      this.process.ref(); // so that waiting for the exit keeps the event loop alive
      this.process.kill('SIGKILL');
    }
    await this.#exit;
  }

  protected static async start(name: string, loopbackUp: boolean): Promise<ChildProcess> {
    assertSandbox(`netns-harness: creating ${name}`);
    const child = spawn('unshare', ['--net', '--', 'sleep', 'infinity'], {
      stdio: 'ignore',
      env: { ...process.env, [RUN_ID_ENV]: runId() },
    });
    await waitForExec(child, 'sleep', name);
    // Holders never keep a finished (or failed) test alive; they die with the sandbox anyway.
    child.unref();
    const netns = `/proc/${child.pid}/ns/net`;
    await applyHostState(netns);
    if (loopbackUp) await run(['ip', 'link', 'set', 'lo', 'up'], { netns });
    return child;
  }
}

/** A fake machine: a namespace that plays the root network namespace. */
export class Host extends NetnsHolder {
  readonly containers = new Set<Container>();

  static async create(name = 'host', opts: HolderOptions = {}): Promise<Host> {
    return new Host(name, await NetnsHolder.start(name, opts.loopbackUp ?? true));
  }

  /** Starts a container: a process alone in its own network namespace, with only `lo` (down unless asked). */
  async createContainer(name: string, opts: HolderOptions = {}): Promise<Container> {
    const c = new Container(name, await NetnsHolder.start(`${this.name}/${name}`, opts.loopbackUp ?? false), this);
    this.containers.add(c);
    return c;
  }

  override async destroy(): Promise<void> {
    await Promise.all([...this.containers].map((c) => c.destroy()));
    await super.destroy();
  }
}

export class Container extends NetnsHolder {
  constructor(
    name: string,
    process: ChildProcess,
    readonly host: Host,
  ) {
    super(name, process);
  }

  override async destroy(): Promise<void> {
    this.host.containers.delete(this);
    await super.destroy();
  }
}

export function createHost(name?: string, opts?: HolderOptions): Promise<Host> {
  return Host.create(name, opts);
}

/** Kills every host and container this process started. */
export async function destroyAll(): Promise<void> {
  await Promise.all([...live].map((h) => h.destroy()));
}
