/**
 * One CNI invocation, read and validated: environment, stdin (bounded), the network configuration with
 * its version checked against the verb, prevResult converted to the 1.1.0 model, GC's valid attachments.
 * Every failure is a CniError with the spec's code, raised before any plugin code runs.
 * See docs/CNI.md for the rest.
 */
import { readSync, statSync, statfsSync } from 'node:fs';
import { isValidNetworkName, MAX_NETWORK_NAME_BYTES } from '../names.js';
import { decodeNetConf, type FieldTable } from './decode.js';
import { CNI_ERR, CniError, invalidConfig, invalidEnv, PRIVILEGE_HINT } from './errors.js';
import { parseEnv, type CniEnv } from './env.js';
import { parseResult, type CniResult } from './types.js';
import { isSupportedVersion, MIN_VERSION_FOR, SUPPORTED_VERSIONS, versionAtLeast, type CniVersion } from './version.js';

/** The most stdin a plugin accepts: a network configuration is a few KiB; 1 MiB is generous. */
export const MAX_STDIN_BYTES = 1 << 20;

/** The network configuration as parsed from stdin (plugin-specific keys included). */
export interface NetConf {
  cniVersion: string;
  name: string;
  type?: string;
  ipam?: { type?: string; [key: string]: unknown };
  prevResult?: unknown;
  runtimeConfig?: Record<string, unknown>;
  args?: Record<string, unknown>;
  [key: string]: unknown;
}

/** An attachment the runtime still considers valid (GC's `cni.dev/valid-attachments`). */
export interface GcAttachment {
  containerId: string;
  ifname: string;
}

export interface CniRequest extends CniEnv {
  /** the whole environment the plugin got (passed on to delegated plugins) */
  env: Readonly<Record<string, string | undefined>>;
  /** stdin as received (passed unchanged to delegated plugins); empty for VERSION */
  stdin: Buffer;
  /** the parsed configuration (undefined only for VERSION) */
  config: NetConf;
  cniVersion: CniVersion;
  /** the network name (config.name, validated) */
  name: string;
  /** config.prevResult in the 1.1.0 model, if given */
  prevResult: CniResult | undefined;
  /** GC only: the attachments to keep */
  validAttachments: GcAttachment[] | undefined;
}

function errCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

/** The error for a stdin larger than `limit` bytes (also what the agent answers for an oversized request body). */
export function stdinTooLarge(limit = MAX_STDIN_BYTES): CniError {
  return new CniError(CNI_ERR.IO_FAILURE, `network configuration on stdin is larger than ${limit} bytes; refusing it`, { object: 'stdin' });
}

/**
 * Reads all of stdin, refusing more than `limit` bytes (error 5). Works on pipes, files and non-blocking
 * descriptors (EAGAIN is waited out, at most `timeoutMs`); a closed stdin reads as empty.
 */
export async function readStdin(limit = MAX_STDIN_BYTES, fd = 0, timeoutMs = 30_000): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  const buf = Buffer.allocUnsafe(64 * 1024);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (e) {
      const c = errCode(e);
      if (c === 'EAGAIN') {
        if (Date.now() > deadline) throw new CniError(CNI_ERR.IO_FAILURE, `timed out reading stdin after ${timeoutMs} ms`);
        await sleep(2);
        continue;
      }
      if (c === 'EOF' || c === 'EBADF') break;
      throw new CniError(CNI_ERR.IO_FAILURE, `error reading stdin: ${(e as Error).message}`, { cause: e });
    }
    if (n === 0) break;
    total += n;
    if (total > limit) throw stdinTooLarge(limit);
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks, total);
}

/**
 * How deep a configuration may nest. Real ones nest 5 or 6 levels (a prevResult's route in a list of a
 * chained plugin's config); a hostile one nested 100 000 levels parses fine but overflows the stack of any
 * recursive code that later touches it (JSON.stringify in an error message, Result conversion, delegation).
 */
export const MAX_CONFIG_DEPTH = 64;

/** The top-level key under which `v` nests deeper than `max` levels, or undefined. Iterative: no recursion. */
function deeperThan(v: Record<string, unknown>, max: number): string | undefined {
  const stack: Array<[unknown, number, string]> = Object.entries(v).map(([k, x]) => [x, 1, k]);
  while (stack.length > 0) {
    const [x, depth, top] = stack.pop()!;
    if (typeof x !== 'object' || x === null) continue;
    if (depth >= max) return top;
    for (const y of Array.isArray(x) ? x : Object.values(x)) stack.push([y, depth + 1, top]);
  }
  return undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses and validates the configuration for `env.command`. Keys are matched to the spec's fields and the
 * plugin's own (`fields`) as the reference's Go decoding matches them, and every declared field is checked
 * for its type (decode.ts): `config` holds the keys spelt as declared.
 */
export function parseRequest(
  envVars: Readonly<Record<string, string | undefined>>,
  stdin: Buffer,
  env: CniEnv = parseEnv(envVars),
  fields?: FieldTable,
): CniRequest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdin.toString('utf8'));
  } catch (e) {
    throw new CniError(CNI_ERR.DECODING_FAILURE, `error decoding network config: ${(e as Error).message}`, { object: 'stdin' });
  }
  if (!isObject(parsed)) {
    throw new CniError(CNI_ERR.DECODING_FAILURE, 'error decoding network config: not a JSON object', { object: 'stdin' });
  }
  const tooDeep = deeperThan(parsed, MAX_CONFIG_DEPTH);
  if (tooDeep !== undefined) {
    throw new CniError(CNI_ERR.DECODING_FAILURE, `error decoding network config: "${tooDeep}" is nested deeper than ${MAX_CONFIG_DEPTH} levels`, {
      object: tooDeep,
    });
  }
  const config = decodeNetConf(parsed, fields);
  const v = config.cniVersion;
  if (v !== undefined && typeof v !== 'string') {
    throw new CniError(CNI_ERR.DECODING_FAILURE, `error decoding network config: cniVersion must be a string, not ${JSON.stringify(v)}`, {
      object: 'cniVersion',
    });
  }
  if (!isSupportedVersion(v)) {
    throw new CniError(CNI_ERR.INCOMPATIBLE_VERSION, 'incompatible CNI versions', {
      object: 'cniVersion',
      details: `config is ${JSON.stringify(v ?? '')}, plugin supports ${JSON.stringify(SUPPORTED_VERSIONS)}`,
    });
  }
  const min = MIN_VERSION_FOR[env.command];
  if (min !== undefined && !versionAtLeast(v, min)) {
    throw new CniError(CNI_ERR.INCOMPATIBLE_VERSION, `config version ${v} does not allow ${env.command} (it needs ${min} or later)`, {
      object: 'cniVersion',
    });
  }
  const name = config.name;
  if (name === undefined || name === null || name === '') throw invalidConfig('missing network name', 'name');
  if (typeof name !== 'string' || !isValidNetworkName(name)) {
    const tooLong = typeof name === 'string' && name.length > MAX_NETWORK_NAME_BYTES;
    throw new CniError(
      CNI_ERR.INVALID_NETWORK_CONFIG,
      tooLong ? `network name is longer than ${MAX_NETWORK_NAME_BYTES} characters` : 'invalid characters found in network name',
      {
        object: 'name',
        details: String(typeof name === 'string' ? name.slice(0, 80) : JSON.stringify(name)),
      },
    );
  }
  let prevResult: CniResult | undefined;
  if (config.prevResult !== undefined && config.prevResult !== null) {
    prevResult = parseResult(config.prevResult, { defaultVersion: v, what: 'prevResult' });
  }
  let validAttachments: GcAttachment[] | undefined;
  if (env.command === 'GC') {
    const raw = config['cni.dev/valid-attachments'] ?? config['cni.dev/attachments'];
    if (!Array.isArray(raw)) {
      throw invalidConfig(
        'GC needs the list of valid attachments in "cni.dev/valid-attachments" (an empty list releases everything); refusing to guess',
        'cni.dev/valid-attachments',
      );
    }
    validAttachments = raw.map((a, i) => {
      if (!isObject(a) || typeof a.containerID !== 'string' || typeof a.ifname !== 'string') {
        throw invalidConfig(`cni.dev/valid-attachments[${i}] must be {"containerID": string, "ifname": string}`, 'cni.dev/valid-attachments');
      }
      return { containerId: a.containerID, ifname: a.ifname };
    });
  }
  return {
    ...env,
    env: envVars,
    stdin,
    config: config as NetConf,
    cniVersion: v,
    name,
    prevResult,
    validAttachments,
  };
}

const NSFS_MAGIC = 0x6e736673;

/**
 * Checks CNI_NETNS for ADD/CHECK before anything is touched: it must exist (else error 3) and be a
 * namespace file (else error 4); with `foreign`, it must not be the plugin's own network namespace
 * (error 8) — the reference skel checks that only after the plugin has acted.
 */
export function checkNetns(netns: string, mode: 'exists' | 'foreign'): void {
  let st;
  try {
    st = statSync(netns);
  } catch (e) {
    const c = errCode(e);
    if (c === 'EACCES' || c === 'EPERM') {
      // /proc/PID/ns/net of a process with more privilege (the kernel's ptrace access check) or in another user namespace
      throw new CniError(CNI_ERR.NOT_PERMITTED, `CNI_NETNS ${netns} cannot be opened (${c}): ${PRIVILEGE_HINT}`, { object: netns, cause: e });
    }
    throw new CniError(CNI_ERR.UNKNOWN_CONTAINER, `network namespace ${netns} does not exist (${c ?? 'error'})`, {
      object: netns,
      cause: e,
    });
  }
  let isNs = false;
  try {
    isNs = statfsSync(netns).type === NSFS_MAGIC;
  } catch {
    /* treated as not a namespace */
  }
  if (!isNs) throw invalidEnv(['CNI_NETNS'], `CNI_NETNS ${netns} is not a namespace file`);
  if (mode === 'foreign') {
    const own = statSync('/proc/self/ns/net');
    if (own.dev === st.dev && own.ino === st.ino) {
      throw new CniError(CNI_ERR.INVALID_NETNS, `CNI_NETNS ${netns} is the plugin's own network namespace; refusing to act on it`, {
        object: netns,
      });
    }
  }
}

/** A pause (node:timers/promises costs a few ms of start-up in every plugin exec). */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
