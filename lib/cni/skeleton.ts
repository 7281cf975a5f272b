/**
 * The plugin skeleton: reads the invocation, validates it, dispatches to the plugin's verb handler and
 * prints either the Result (converted to the configuration's cniVersion) or the error JSON
 * `{cniVersion, code, msg, details}` on stdout with exit status 1. Logs go to stderr; stdout never
 * carries anything but the one JSON document.
 *
 *   await runPlugin({ name: 'netplumb-x', netns: 'foreign', add, del, check, gc, status });
 * See docs/CNI.md for the rest.
 */
import { checkCapabilities, type Capability } from './caps.js';
import type { FieldTable } from './decode.js';
import { CNI_ERR, toCniError, type CniError, type CniErrorJson } from './errors.js';
import { parseEnv } from './env.js';
import { checkNetns, parseRequest, readStdin, type CniRequest } from './request.js';
import { formatResult, type CniResult } from './types.js';
import { CURRENT_VERSION, isSupportedVersion, SUPPORTED_VERSIONS } from './version.js';
import { exitNow } from '../sys/exit.js';

export interface CniPlugin {
  /** the executable's name, for logs (`netplumb-bridge`) */
  name: string;
  /** printed on stderr when run without CNI_COMMAND */
  about?: string;
  /**
   * What ADD and CHECK require of CNI_NETNS before the handler runs: nothing (`ignore`, the default, e.g.
   * IPAM plugins), an existing namespace file (`exists`), or one that is not the plugin's own (`foreign`).
   */
  netns?: 'ignore' | 'exists' | 'foreign';
  /**
   * Capabilities ADD, CHECK, DEL and GC cannot work without: checked in the effective set before the handler
   * runs, so a plugin started without them fails at once with error 107 naming them, before touching anything
   * (the IPAM store included). In a user namespace the set is the one held there. Per verb when they differ
   * (a CHECK that only reads needs less than the ADD that writes); a verb not named needs none.
   */
  capabilities?: readonly Capability[] | Partial<Record<'ADD' | 'DEL' | 'CHECK' | 'GC', readonly Capability[]>>;
  /**
   * The configuration fields the plugin reads beyond the spec's (nested under `ipam`, `runtimeConfig`, `args`
   * where they live there): keys are matched to them as the reference's Go plugins match them, and their
   * types are checked before the handler runs (decode.ts).
   */
  fields?: FieldTable;
  add(req: CniRequest): Promise<CniResult>;
  del(req: CniRequest): Promise<void>;
  check(req: CniRequest): Promise<void>;
  /** default: nothing to collect */
  gc?(req: CniRequest): Promise<void>;
  /** default: ready */
  status?(req: CniRequest): Promise<void>;
}

export interface Outcome {
  exitCode: 0 | 1;
  /** exactly what goes to stdout ('' when a verb succeeds without output) */
  stdout: string;
  /** log lines for stderr */
  stderr: string;
  error?: CniError;
}

export interface HandleOptions {
  /** reads stdin (default: the process's fd 0, bounded by MAX_STDIN_BYTES) */
  readStdin?: () => Promise<Buffer>;
}

function errorOutcome(plugin: CniPlugin, e: unknown, version: string, command: string): Outcome {
  const err = toCniError(e);
  const json: CniErrorJson = err.toJSON(version);
  let log = `${plugin.name}: ${command || 'invocation'} failed: [${err.cniCode}] ${err.message}${err.details ? ` (${err.details})` : ''}\n`;
  if (err.cniCode === CNI_ERR.INTERNAL && err.cause instanceof Error && err.cause.stack) log += `${err.cause.stack}\n`;
  return { exitCode: 1, stdout: `${JSON.stringify(json, null, 4)}\n`, stderr: log, error: err };
}

/** What `command` needs of the plugin's declared capabilities (one list for every verb, or a list per verb). */
function capabilitiesFor(plugin: CniPlugin, command: string): readonly Capability[] {
  const caps = plugin.capabilities;
  if (caps === undefined) return [];
  if (Array.isArray(caps)) return caps as readonly Capability[];
  return (caps as Partial<Record<string, readonly Capability[]>>)[command] ?? [];
}

/** Runs one invocation against `plugin` without touching the process's stdout or exit status. */
export async function handle(plugin: CniPlugin, envVars: Readonly<Record<string, string | undefined>>, opts: HandleOptions = {}): Promise<Outcome> {
  let version: string = CURRENT_VERSION;
  let command = envVars.CNI_COMMAND ?? '';
  try {
    const env = parseEnv(envVars);
    command = env.command;
    if (env.command === 'VERSION') {
      return { exitCode: 0, stdout: `${JSON.stringify({ cniVersion: CURRENT_VERSION, supportedVersions: SUPPORTED_VERSIONS })}\n`, stderr: '' };
    }
    const stdin = await (opts.readStdin ?? (() => readStdin()))();
    try {
      const v = JSON.parse(stdin.toString('utf8'))?.cniVersion;
      if (isSupportedVersion(v)) version = v;
    } catch {
      /* reported by parseRequest */
    }
    const req = parseRequest(envVars, stdin, env, plugin.fields);
    const mode = plugin.netns ?? 'ignore';
    if (mode !== 'ignore' && (req.command === 'ADD' || req.command === 'CHECK')) checkNetns(req.netns, mode);
    if (req.command !== 'STATUS') checkCapabilities(plugin.name, capabilitiesFor(plugin, req.command));
    switch (req.command) {
      case 'ADD': {
        const result = await plugin.add(req);
        return { exitCode: 0, stdout: `${formatResult(result, req.cniVersion)}\n`, stderr: '' };
      }
      case 'DEL':
        await plugin.del(req);
        break;
      case 'CHECK':
        await plugin.check(req);
        break;
      case 'GC':
        await plugin.gc?.(req);
        break;
      case 'STATUS':
        await plugin.status?.(req);
        break;
    }
    return { exitCode: 0, stdout: '', stderr: '' };
  } catch (e) {
    const o = errorOutcome(plugin, e, version, command);
    // Someone ran the binary by hand: say what it is, as libcni does (the error JSON still follows).
    if (command === '' && plugin.about) o.stderr = `${plugin.about}\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}\n${o.stderr}`;
    return o;
  }
}

/**
 * The main of a plugin executable: handles the process's invocation, writes stdout and stderr, exits
 * with 0 or 1. An exception that escapes anyway (a bug) still becomes error JSON with code 999.
 */
export async function runPlugin(plugin: CniPlugin): Promise<never> {
  const die = (e: unknown) => {
    const o = errorOutcome(plugin, e, CURRENT_VERSION, process.env.CNI_COMMAND ?? '');
    process.stdout.write(o.stdout);
    process.stderr.write(o.stderr);
    process.exit(1);
  };
  process.on('uncaughtException', die);
  process.on('unhandledRejection', die);
  const o = await handle(plugin, process.env);
  if (o.stderr) process.stderr.write(o.stderr);
  // Pipes and files are written synchronously on Linux: exiting right away loses nothing.
  if (o.stdout) process.stdout.write(o.stdout);
  exitNow(o.exitCode);
}
