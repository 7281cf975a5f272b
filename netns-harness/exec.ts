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

/**
 * Whether a link as `ip -j link` prints it is still on its way: the kernel's link watch brings its operstate in
 * line with its carrier (LOWER_UP) up to a second after the carrier changed, so UP without carrier or DOWN with
 * it is a state that will change by itself.
 */
export function operstateCatchingUp(l: { flags?: readonly string[]; operstate?: string }): boolean {
  if (l.operstate !== 'UP' && l.operstate !== 'DOWN') return false;
  return (l.flags ?? []).includes('LOWER_UP') !== (l.operstate === 'UP');
}

/**
 * Several `ip -j` commands run as one program, `ip -j [OPTIONS] -batch -` (in `netns` if given), each one's JSON
 * parsed, in order: one process (two with nsenter) instead of one per command, for an oracle that reads several
 * tables of one namespace at once. `options` are ip's global options (`-d`, `-6`): they apply to every command.
 * No argument may contain a blank.
 */
export async function ipJsonBatch<T extends unknown[] = any[]>(
  commands: readonly (readonly string[])[],
  netns?: string,
  options: readonly string[] = [],
): Promise<T> {
  // a batch line is split at blanks: an argument with one in it would become two
  if (commands.some((c) => c.some((a) => /\s/.test(a)))) throw new TypeError(`ipJsonBatch: an argument with a blank: ${JSON.stringify(commands)}`);
  const r = await run(['ip', '-j', ...options, '-batch', '-'], { netns, input: commands.map((c) => `${c.join(' ')}\n`).join('') });
  // -j prints one line of JSON per command
  const lines = r.stdout.split('\n').filter((l) => l !== '');
  if (lines.length !== commands.length) throw new RunError({ ...r, stderr: `${commands.length} commands, ${lines.length} lines of output: ${r.stdout}` });
  return lines.map((l) => JSON.parse(l)) as T;
}
