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
import { RUN_ID_ENV, runId } from './run-id.js';
import { assertSandbox } from './sandbox.js';

const live = new Set<NetnsHolder>();

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
    const failed = new Promise<never>((_, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`netns-harness: ${name} exited early (status ${code})`)));
    });
    failed.catch(() => undefined);
    // unshare(2) happens before exec: once the process is `sleep`, its namespace is the new one.
    for (let i = 0; i < 400; i++) {
      await Promise.race([sleep(5), failed]);
      let comm = '';
      try {
        comm = readFileSync(`/proc/${child.pid}/comm`, 'utf8').trim();
      } catch {
        /* not yet visible */
      }
      if (comm === 'sleep') {
        // Holders never keep a finished (or failed) test alive; they die with the sandbox anyway.
        child.unref();
        if (loopbackUp) await run(['ip', 'link', 'set', 'lo', 'up'], { netns: `/proc/${child.pid}/ns/net` });
        return child;
      }
    }
    child.kill('SIGKILL');
    throw new Error(`netns-harness: ${name} did not start within 2 s`);
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
