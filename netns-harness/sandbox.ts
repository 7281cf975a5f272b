/**
 * The sandbox: every test file, example and benchmark runs inside fresh PID, network and mount namespaces
 * (plus a user namespace when not root). Cleanup is the kernel's job, not ours:
 *
 *  - the sandboxed program is PID 1 of its PID namespace, so when it exits or is killed, the kernel kills
 *    every process in it (namespace holders, plugins, servers);
 *  - network namespaces are held only by those processes or by bind mounts in the private mount namespace,
 *    so they vanish with them;
 *  - `unshare --kill-child` and `setpriv --pdeathsig KILL` chain the sandbox's life to the launching
 *    process, so SIGKILL of the launcher takes everything down too.
 *
 * Inside, /run (thus /var/run/netns, /run/cni, the xtables lock) is a private tmpfs with none of the
 * machine's mounts beneath it, so `ip netns add` and friends never touch the machine's own directories and
 * the mount table looks the same on every machine (host-state.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readlinkSync } from 'node:fs';
import { mount, MS_NODEV, MS_NOSUID } from '../lib/sys/libc.js';
import { run } from './exec.js';
import { applyHostState, detachMountsUnder } from './host-state.js';
import { RUN_ID_ENV, runId } from './run-id.js';

export const SANDBOX_ENV = 'NETPLUMB_SANDBOX';
/**
 * SANDBOX_ENV's value for a program started as PID 1 of a new sandbox (sandboxArgv) before it set itself up:
 * its `sandboxed()` then does the setup instead of starting another sandbox.
 */
export const SANDBOX_PENDING = 'pending';

function pidNamespace(): string {
  return readlinkSync('/proc/self/ns/pid');
}

/** True in the sandbox's PID 1 after setup and in every process it starts. */
export function inSandbox(): boolean {
  const marker = process.env[SANDBOX_ENV];
  return marker !== undefined && marker !== SANDBOX_PENDING && marker === pidNamespace();
}

/** Throws unless running inside a sandbox: the harness never creates anything in the machine's own namespaces. */
export function assertSandbox(what: string): void {
  if (!inSandbox()) {
    throw new Error(`${what}: refusing to run outside the netns-harness sandbox (call \`await sandboxed()\` first)`);
  }
}

export interface SandboxOptions {
  /** use a user namespace even when root (default: only when not root) */
  forceUserNamespace?: boolean;
  env?: Record<string, string>;
  stdio?: 'inherit' | 'pipe';
}

/** The command line that runs `argv` as PID 1 of a new sandbox. */
export function sandboxArgv(argv: readonly string[], opts: SandboxOptions = {}): string[] {
  const user = opts.forceUserNamespace || process.getuid?.() !== 0 ? ['--user', '--map-root-user'] : [];
  return [
    'setpriv',
    '--pdeathsig',
    'KILL',
    '--',
    'unshare',
    ...user,
    '--pid',
    '--fork',
    '--kill-child=SIGKILL',
    '--mount-proc',
    '--net',
    '--mount',
    '--propagation',
    'private',
    '--',
    ...argv,
  ];
}

/** Starts `argv` inside a new sandbox and returns the child (the launcher side of the chain). */
export function spawnSandboxed(argv: readonly string[], opts: SandboxOptions = {}): ChildProcess {
  const [file, ...args] = sandboxArgv(argv, opts) as [string, ...string[]];
  return spawn(file, args, {
    stdio: opts.stdio ?? 'inherit',
    env: { ...process.env, [RUN_ID_ENV]: runId(), ...opts.env, [SANDBOX_ENV]: SANDBOX_PENDING },
  });
}

function exitCodeOf(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.once('error', (e) => {
      process.stderr.write(`netns-harness: cannot start the sandbox: ${e.message}\n`);
      resolve(127);
    });
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal === 'SIGKILL' ? 9 : 15)));
  });
}

async function setupInside(): Promise<void> {
  // PID 1 gets no default signal actions: without handlers, Ctrl-C and `kill` would be ignored.
  for (const [sig, n] of [
    ['SIGINT', 2],
    ['SIGTERM', 15],
    ['SIGHUP', 1],
  ] as const) {
    process.on(sig, () => process.exit(128 + n));
  }
  // Nothing of the machine's /run stays beneath the sandbox's (see host-state.ts).
  detachMountsUnder('/run');
  mount('tmpfs', '/run', 'tmpfs', MS_NOSUID | MS_NODEV, 'mode=0755');
  // The reference host-local's default store; a test that forgets dataDir must not write the machine's.
  if (existsSync('/var/lib/cni')) {
    detachMountsUnder('/var/lib/cni');
    mount('tmpfs', '/var/lib/cni', 'tmpfs', MS_NOSUID | MS_NODEV, 'mode=0755');
  }
  await run(['ip', 'link', 'set', 'lo', 'up']);
  await applyHostState();
  process.env[SANDBOX_ENV] = pidNamespace();
}

/**
 * Call (and await) first thing in any program that builds networks: outside a sandbox it re-runs the
 * program inside one and exits with its status; inside, it returns.
 */
export async function sandboxed(opts: SandboxOptions = {}): Promise<void> {
  if (inSandbox()) return;
  if (process.pid === 1 && process.env[SANDBOX_ENV] === SANDBOX_PENDING) {
    await setupInside();
    return;
  }
  const child = spawnSandboxed([process.execPath, ...process.execArgv, ...process.argv.slice(1)], opts);
  // Dying is enough: the parent-death signal chain then kills the sandbox and the kernel cleans it up.
  for (const [sig, n] of [
    ['SIGINT', 2],
    ['SIGTERM', 15],
    ['SIGHUP', 1],
  ] as const) {
    process.on(sig, () => process.exit(128 + n));
  }
  const code = await exitCodeOf(child);
  if (code !== 0 && process.getuid?.() !== 0) {
    process.stderr.write(
      'netns-harness: note: not root, so the sandbox uses a user namespace; if it failed to start, ' +
        'check that unprivileged user namespaces are enabled (sysctl kernel.unprivileged_userns_clone=1, ' +
        'user.max_user_namespaces > 0)\n',
    );
  }
  process.exit(code);
}
