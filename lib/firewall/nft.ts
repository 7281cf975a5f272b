/**
 * Running nftables: JSON batches in (one batch = one kernel transaction), JSON listings out.
 *
 * Two interchangeable backends:
 *  - `libnftables`: libnftables.so.1 (shipped with the nftables package) called in process through koffi.
 *    No process per call; a transaction takes well under a millisecond. The default when the library loads.
 *  - `exec`: the `nft` program (`nft -j BATCH`, or `nft -j -f FILE` for a long batch, `nft -j list table …`), through execa
 *    with argument arrays. The fallback when libnftables is missing.
 *
 * A namespace is targeted with `netns` (a path such as /proc/PID/ns/net): the in-process backend enters it on
 * the calling thread for the duration of one synchronous call (see netns.ts); the exec backend prefixes
 * `nsenter --net=PATH`.
 * See docs/FIREWALL.md for the rest.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import koffi from 'koffi';
import { ERR, NetplumbError } from '../errors.js';
import { inNetnsSync } from './netns.js';

export type NftBackendName = 'libnftables' | 'exec';

export interface FirewallOptions {
  /** network namespace to act in (a path like /proc/PID/ns/net); default: the caller's */
  netns?: string | undefined;
  /** how nftables is driven; default `libnftables` when it loads, else `exec` (env NETPLUMB_NFT_BACKEND overrides) */
  backend?: NftBackendName | undefined;
}

/** An nftables command failed; `nftError` is nft's own message, `code` the errno name it reports when known. */
export class FirewallError extends NetplumbError {
  readonly nftError: string | undefined;
  constructor(message: string, init: { code: string; op: string; object?: string | undefined; nftError?: string | undefined; cause?: unknown }) {
    super(message, init);
    this.nftError = init.nftError;
  }
}

// nft prints the kernel's strerror(); map back to errno names so callers can branch on `code`.
const STRERROR: [RegExp, string][] = [
  [/File exists/, 'EEXIST'],
  [/No such file or directory/, 'ENOENT'],
  [/Device or resource busy/, 'EBUSY'],
  [/Operation not permitted/, 'EPERM'],
  [/Permission denied/, 'EACCES'],
  [/Interrupted system call/, 'EINTR'],
  [/Resource temporarily unavailable/, 'EAGAIN'],
  [/Operation not supported/, 'EOPNOTSUPP'],
  [/Message too long/, 'EMSGSIZE'],
  [/No buffer space available/, 'ENOBUFS'],
  [/Invalid argument/, 'EINVAL'],
];

export function nftErrorCode(text: string): string {
  for (const [re, code] of STRERROR) if (re.test(text)) return code;
  return ERR.NFT;
}

function nftFailure(op: string, object: string | undefined, text: string): FirewallError {
  const clean = text.trim();
  return new FirewallError(`nft ${op}${object ? ` ${object}` : ''}: ${clean || 'failed'}`, {
    code: nftErrorCode(clean),
    op: `nft ${op}`,
    object,
    nftError: clean,
  });
}

/** One JSON batch command, as in `{"nftables": [ … ]}`. */
export type NftCommand = Record<string, unknown>;

export interface NftBackend {
  readonly name: NftBackendName;
  /** Applies the commands as one transaction: all or nothing. */
  apply(commands: readonly NftCommand[], netns?: string): Promise<void>;
  /**
   * The same in the caller's own namespace, committed before it returns (throws what `apply` rejects with):
   * only a backend that can commit synchronously has it (libnftables, not the nft program).
   */
  applyNow?(commands: readonly NftCommand[]): void;
  /** `list table FAMILY NAME` as parsed JSON objects (the `nftables` array), or null when the table is absent. */
  listTable(family: string, name: string, netns?: string): Promise<NftObject[] | null>;
  /**
   * `list WHAT…` (`chain FAMILY TABLE NAME`, `map …`, `chains FAMILY`), or null when it is absent. Costs what
   * the objects named hold, where listing a table costs every chain and rule in it.
   */
  list(what: readonly string[], netns?: string): Promise<NftObject[] | null>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- `nft -j` output: untyped JSON, read by shape
export type NftObject = Record<string, any>;

function parseListing(text: string): NftObject[] {
  const out: NftObject[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const doc = JSON.parse(line) as { nftables?: NftObject[] };
    out.push(...(doc.nftables ?? []));
  }
  return out;
}

// ── libnftables through koffi ──────────────────────────────────────────────────────────────────────────

const NFT_CTX_OUTPUT_HANDLE = 1 << 3;
const NFT_CTX_OUTPUT_JSON = 1 << 4;

interface Libnft {
  ctxNew: (flags: number) => unknown;
  ctxFree: (ctx: unknown) => void;
  setOutputFlags: (ctx: unknown, flags: number) => void;
  bufferOutput: (ctx: unknown) => number;
  bufferError: (ctx: unknown) => number;
  getOutput: (ctx: unknown) => string | null;
  getError: (ctx: unknown) => string | null;
  runCmd: (ctx: unknown, buf: string) => number;
}

let libnft: Libnft | null | undefined;

function loadLibnft(): Libnft | null {
  if (libnft !== undefined) return libnft;
  try {
    const lib = koffi.load('libnftables.so.1');
    libnft = {
      ctxNew: lib.func('void *nft_ctx_new(uint32_t flags)'),
      ctxFree: lib.func('void nft_ctx_free(void *ctx)'),
      setOutputFlags: lib.func('void nft_ctx_output_set_flags(void *ctx, uint32_t flags)'),
      bufferOutput: lib.func('int nft_ctx_buffer_output(void *ctx)'),
      bufferError: lib.func('int nft_ctx_buffer_error(void *ctx)'),
      getOutput: lib.func('const char *nft_ctx_get_output_buffer(void *ctx)'),
      getError: lib.func('const char *nft_ctx_get_error_buffer(void *ctx)'),
      runCmd: lib.func('int nft_run_cmd_from_buffer(void *ctx, const char *buf)'),
    };
  } catch {
    libnft = null;
  }
  return libnft;
}

/** True when libnftables.so.1 can be loaded. */
export function libnftablesAvailable(): boolean {
  return loadLibnft() !== null;
}

class LibnftablesBackend implements NftBackend {
  readonly name = 'libnftables';
  // A context opens its netlink socket in the namespace it is created in, so only the caller's own namespace
  // gets a long-lived context; a foreign namespace gets a fresh one per call (holding it would pin the
  // namespace alive after its last process is gone).
  #own: unknown;

  constructor(private readonly lib: Libnft) {}

  #newCtx(): unknown {
    const ctx = this.lib.ctxNew(0);
    if (!ctx) throw new FirewallError('nft_ctx_new failed', { code: 'ENOMEM', op: 'nft_ctx_new' });
    this.lib.setOutputFlags(ctx, NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE);
    this.lib.bufferOutput(ctx);
    this.lib.bufferError(ctx);
    return ctx;
  }

  /** Runs one command buffer synchronously; returns [ok, stdout, stderr]. */
  #run(buf: string, netns: string | undefined): [boolean, string, string] {
    const once = (ctx: unknown): [boolean, string, string] => {
      const rc = this.lib.runCmd(ctx, buf);
      // Reading the buffers also rewinds them for the next command.
      const out = this.lib.getOutput(ctx) ?? '';
      const err = this.lib.getError(ctx) ?? '';
      return [rc === 0, out, err];
    };
    if (netns === undefined) {
      this.#own ??= this.#newCtx();
      return once(this.#own);
    }
    return inNetnsSync(netns, () => {
      const ctx = this.#newCtx();
      try {
        return once(ctx);
      } finally {
        this.lib.ctxFree(ctx);
      }
    });
  }

  async apply(commands: readonly NftCommand[], netns?: string): Promise<void> {
    this.#apply(commands, netns);
  }

  applyNow(commands: readonly NftCommand[]): void {
    this.#apply(commands, undefined);
  }

  #apply(commands: readonly NftCommand[], netns: string | undefined): void {
    const [ok, , err] = this.#run(JSON.stringify({ nftables: commands }), netns);
    if (!ok) throw nftFailure('transaction', netns, err);
  }

  async listTable(family: string, name: string, netns?: string): Promise<NftObject[] | null> {
    return this.#list(['table', family, name], netns);
  }

  async list(what: readonly string[], netns?: string): Promise<NftObject[] | null> {
    return this.#list(what, netns);
  }

  #list(what: readonly string[], netns: string | undefined): NftObject[] | null {
    const [ok, out, err] = this.#run(`list ${what.join(' ')}`, netns);
    if (!ok) {
      if (nftErrorCode(err) === 'ENOENT') return null;
      throw nftFailure(`list ${what[0]}`, what.slice(1).join(' '), err);
    }
    return parseListing(out);
  }
}

// ── the nft program ────────────────────────────────────────────────────────────────────────────────────

function nftArgv(netns: string | undefined, args: string[]): [string, string[]] {
  return netns === undefined ? ['nft', args] : ['nsenter', [`--net=${netns}`, '--', 'nft', ...args]];
}

class ExecBackend implements NftBackend {
  readonly name = 'exec';

  async #nft(args: string[], netns: string | undefined) {
    const [file, argv] = nftArgv(netns, args);
    // Loaded on first use: execa's import costs ~70 ms, which a plugin on the libnftables path must not pay.
    const { execa } = await import('execa');
    const r = await execa(file, argv, { stdin: 'ignore', reject: false, timeout: 60_000, killSignal: 'SIGKILL', stripFinalNewline: false });
    return { ok: r.exitCode === 0 && !r.timedOut, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') + (r.timedOut ? 'nft timed out' : '') };
  }

  async apply(commands: readonly NftCommand[], netns?: string): Promise<void> {
    // nft -f - cannot read Node's stdin (a socketpair: opening /dev/stdin gives ENXIO), so the batch goes
    // on the command line, or through a private file when too long for one argument (128 KiB).
    const batch = JSON.stringify({ nftables: commands });
    if (Buffer.byteLength(batch) < 100_000) {
      const r = await this.#nft(['-j', batch], netns);
      if (!r.ok) throw nftFailure('transaction', netns, r.stderr);
      return;
    }
    const dir = await mkdtemp(join(tmpdir(), 'netplumb-nft-'));
    try {
      const file = join(dir, 'batch.json');
      await writeFile(file, batch, { mode: 0o600, flag: 'wx' });
      const r = await this.#nft(['-j', '-f', file], netns);
      if (!r.ok) throw nftFailure('transaction', netns, r.stderr);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async listTable(family: string, name: string, netns?: string): Promise<NftObject[] | null> {
    return this.#list(['table', family, name], netns);
  }

  async list(what: readonly string[], netns?: string): Promise<NftObject[] | null> {
    return this.#list(what, netns);
  }

  async #list(what: readonly string[], netns: string | undefined): Promise<NftObject[] | null> {
    const r = await this.#nft(['-j', '-a', 'list', ...what], netns);
    if (!r.ok) {
      if (nftErrorCode(r.stderr) === 'ENOENT') return null;
      throw nftFailure(`list ${what[0]}`, what.slice(1).join(' '), r.stderr);
    }
    return parseListing(r.stdout);
  }
}

let libBackend: LibnftablesBackend | undefined;
const execBackend = new ExecBackend();

/** The backend asked for (option, then NETPLUMB_NFT_BACKEND, then libnftables when it loads, else exec). */
export function nftBackend(name?: NftBackendName): NftBackend {
  const wanted = name ?? (process.env.NETPLUMB_NFT_BACKEND as NftBackendName | undefined);
  if (wanted === 'exec') return execBackend;
  const lib = loadLibnft();
  if (lib === null) {
    if (wanted === 'libnftables') {
      throw new FirewallError('libnftables.so.1 cannot be loaded (install nftables)', { code: 'ENOENT', op: 'dlopen', object: 'libnftables.so.1' });
    }
    return execBackend;
  }
  libBackend ??= new LibnftablesBackend(lib);
  return libBackend;
}
