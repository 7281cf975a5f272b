/**
 * Running programs for the harness: argument arrays only, never a shell, always with a timeout,
 * and optionally inside another network namespace through nsenter(1).
 */
import { spawn } from 'node:child_process';
import { RUN_ID_ENV, runId } from './run-id.js';

export interface RunOptions {
  /** path of a network namespace file (e.g. /proc/PID/ns/net) to run the program in */
  netns?: string | undefined;
  /** bytes written to stdin */
  input?: string | Buffer | undefined;
  /** extra environment; merged over the harness's own environment unless `cleanEnv` */
  env?: Record<string, string | undefined> | undefined;
  /** start from an empty environment (plus `env`), as a container runtime does for CNI plugins */
  cleanEnv?: boolean | undefined;
  /** kill the program after this many milliseconds (default 30 s) */
  timeoutMs?: number | undefined;
  /** throw on non-zero exit (default true) */
  check?: boolean | undefined;
  cwd?: string | undefined;
}

export interface RunResult {
  argv: readonly string[];
  exitCode: number;
  signal: string | undefined;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export class RunError extends Error {
  constructor(readonly result: RunResult) {
    super(
      `${result.argv.join(' ')} exited ${result.timedOut ? 'by timeout' : (result.signal ?? result.exitCode)}` +
        (result.stderr.trim() ? `: ${result.stderr.trim()}` : ''),
    );
  }
}

/** argv prefixed with nsenter so it runs in the network namespace at `netns`. */
export function inNetns(netns: string | undefined, argv: readonly string[]): string[] {
  return netns === undefined ? [...argv] : ['nsenter', `--net=${netns}`, '--', ...argv];
}

/**
 * Runs `argv` (in `opts.netns` if given) and collects its output. Node's own spawn rather than execa: the
 * suite runs some ten thousand programs this way (every `ip -j` oracle, every `nsenter`), and execa's own work
 * costs more CPU per run (about 1.4 ms here) than the fork and exec of `ip` itself.
 */
export async function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const full = inNetns(opts.netns, argv);
  const [file, ...args] = full as [string, ...string[]];
  const env: Record<string, string | undefined> = { ...(opts.cleanEnv ? { PATH: process.env.PATH } : process.env), ...opts.env };
  env[RUN_ID_ENV] = runId();
  const child = spawn(file, args, { env, cwd: opts.cwd, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout!.on('data', (d: Buffer) => stdout.push(d));
  child.stderr!.on('data', (d: Buffer) => stderr.push(d));
  if (opts.input !== undefined) {
    child.stdin!.on('error', () => undefined); // a program may exit without reading all of it
    child.stdin!.end(opts.input);
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, opts.timeoutMs ?? 30_000);
  const [code, signal, error] = await new Promise<[number | null, NodeJS.Signals | null, Error | undefined]>((resolve) => {
    child.once('error', (e) => resolve([null, null, e]));
    child.once('close', (c, s) => resolve([c, s, undefined]));
  });
  clearTimeout(timer);
  const result: RunResult = {
    argv: full,
    exitCode: code ?? -1,
    signal: signal ?? undefined,
    stdout: Buffer.concat(stdout).toString('utf8'),
    stderr: Buffer.concat(stderr).toString('utf8') + (error ? error.message : ''),
    timedOut,
  };
  if ((opts.check ?? true) && (result.exitCode !== 0 || result.timedOut)) throw new RunError(result);
  return result;
}

/** Runs `ip -j ARGS` (in `netns` if given) and parses its JSON. */
export async function ipJson<T = any>(args: readonly string[], netns?: string): Promise<T> {
  const r = await run(['ip', '-j', ...args], { netns });
  const text = r.stdout.trim();
  return (text === '' ? [] : JSON.parse(text)) as T;
}
