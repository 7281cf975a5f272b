/**
 * What the netplumb command prints: tables for people, JSON for scripts (`--json`, one document on stdout,
 * 2-space indented, keys stable), progress on stderr only when it is a terminal, errors in one line.
 */
import { ERR, NetplumbError, type NetplumbErrorInit } from '../errors.js';

/**
 * Exit statuses of `netplumb` (docs/CLI.md). `run` exits with its command's status instead, or 125–127 as
 * Docker's `run` does when the command could not be started.
 */
export const EXIT = {
  OK: 0,
  /** the operation failed (the kernel, a plugin, the agent said no) */
  FAILED: 1,
  /** bad arguments or input: nothing was done */
  USAGE: 2,
  /** the network, target or name does not exist */
  NOT_FOUND: 3,
  /** a capability or permission is missing: run as root, or start netplumbd and join its group */
  NOT_PERMITTED: 4,
  /** the thing exists already or is in use (a name, a subnet, attached endpoints) */
  CONFLICT: 5,
  /** `run`: netplumb failed before the command ran */
  RUN_FAILED: 125,
  /** `run`: the command cannot be executed */
  RUN_CANNOT_EXEC: 126,
  /** `run`: the command was not found */
  RUN_NOT_FOUND: 127,
} as const;

/** The code of a CliError given none: the one its exit status stands for. */
const CODE_BY_EXIT: Readonly<Record<number, string>> = {
  [EXIT.USAGE]: ERR.INVALID_ARG_VALUE,
  [EXIT.NOT_FOUND]: ERR.NOT_FOUND,
  [EXIT.CONFLICT]: ERR.EXISTS,
};

/**
 * A failure the CLI reports in one line with a given exit status. Its code is `init.code` (the underlying
 * failure's, when there is one), else the one the exit status stands for, else ERR_COMMAND_FAILED.
 */
export class CliError extends NetplumbError {
  constructor(
    message: string,
    readonly exitCode: number,
    init: Partial<NetplumbErrorInit> = {},
  ) {
    super(message, { ...init, code: init.code ?? CODE_BY_EXIT[exitCode] ?? ERR.COMMAND_FAILED, op: init.op ?? 'netplumb' });
  }
}

/**
 * The exit status of an error code (docs/CLI.md); any other code is EXIT.FAILED. netplumb's own codes, and the
 * kernel's errnos of the same meaning.
 */
export const EXIT_BY_CODE: Readonly<Record<string, number>> = {
  [ERR.INVALID_ARG_VALUE]: EXIT.USAGE,
  [ERR.INVALID_NAME]: EXIT.USAGE,
  [ERR.INVALID_ADDRESS]: EXIT.USAGE,
  [ERR.INVALID_MAC]: EXIT.USAGE,
  [ERR.NETNS_SELF]: EXIT.USAGE,
  [ERR.NOT_A_NETNS]: EXIT.USAGE,
  [ERR.NOT_FOUND]: EXIT.NOT_FOUND,
  [ERR.EXISTS]: EXIT.CONFLICT,
  [ERR.IN_USE]: EXIT.CONFLICT,
  ERR_CNI_NOT_PERMITTED: EXIT.NOT_PERMITTED,
  EINVAL: EXIT.USAGE,
  ENOENT: EXIT.NOT_FOUND,
  ESRCH: EXIT.NOT_FOUND,
  EPERM: EXIT.NOT_PERMITTED,
  EACCES: EXIT.NOT_PERMITTED,
  EEXIST: EXIT.CONFLICT,
  EBUSY: EXIT.CONFLICT,
};

/** The exit status of an error: a CliError's own, else from its CNI code or its code (EXIT_BY_CODE). */
export function exitCodeOf(e: unknown): number {
  if (e instanceof CliError) return e.exitCode;
  const cni = (e as { cniCode?: number }).cniCode;
  if (cni === 107) return EXIT.NOT_PERMITTED;
  if (cni === 7 || cni === 4 || cni === 2) return EXIT.USAGE;
  const code = e instanceof NetplumbError ? e.code : (e as NodeJS.ErrnoException | null)?.code;
  return (typeof code === 'string' ? EXIT_BY_CODE[code] : undefined) ?? EXIT.FAILED;
}

/** One line: the message without stack, newlines folded. */
export function oneLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.replace(/\s*\n\s*/g, '; ');
}

/** Prints rows as a left-aligned table with a header, as `docker network ls` does. */
export function printTable(headers: readonly string[], rows: readonly (readonly string[])[], out: NodeJS.WritableStream = process.stdout): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  out.write(`${[line(headers), ...rows.map(line)].join('\n')}\n`);
}

/** Prints `value` as JSON (the `--json` form of every command). */
export function printJson(value: unknown, out: NodeJS.WritableStream = process.stdout): void {
  out.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A progress reporter that draws `what done/total` on stderr when it is a terminal, and does nothing otherwise. */
export function progress(what: string): { step(done: number, total: number): void; end(): void } {
  const tty = process.stderr.isTTY === true;
  let drawn = false;
  return {
    step(done, total) {
      if (!tty) return;
      process.stderr.write(`\r${what} ${done}/${total}`);
      drawn = true;
    },
    end() {
      if (drawn) process.stderr.write('\r\x1b[K');
    },
  };
}
