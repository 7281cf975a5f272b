/**
 * Delegation: running another plugin (usually IPAM) the way a runtime would — found by its `type` in
 * CNI_PATH, executed with execa (argument array, no shell), the same CNI environment with the verb set,
 * the complete configuration on stdin — and reading its Result or error back. A caller may name plugins it
 * serves in process instead (the modes: netplumb-host-local, lib/modes/host-local.ts): same code, same checks,
 * no exec. This module knows no plugin of its own.
 *
 * Safety: a `type` is one file name (no `/`, no `..`, no NUL: CVE-2021-20206), CNI_PATH entries must be
 * absolute, and the plugin found must be a regular executable file.
 * See docs/CNI.md for the rest.
 */
import { accessSync, constants as FS, statSync } from 'node:fs';
import { join } from 'node:path';
import { CNI_ERR, CniError, invalidConfig, invalidEnv, toCniError } from './errors.js';
import { parseEnv, type CniCommand } from './env.js';
import { parseRequest, type CniRequest } from './request.js';
import type { CniPlugin } from './skeleton.js';
import { parseResult, type CniResult } from './types.js';

const PLUGIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;

/** Validates a plugin `type` as a single safe file name (error 7 naming `key`). */
export function validatePluginType(type: unknown, key = 'ipam.type'): string {
  if (typeof type !== 'string' || type === '') throw invalidConfig(`${key} is missing`, key);
  if (!PLUGIN_NAME.test(type) || type.includes('..') || type.length > 255) {
    throw invalidConfig(`${key} ${JSON.stringify(type)} is not a plugin name (no "/", "..", or other path components)`, key);
  }
  return type;
}

/**
 * The executable for `type` in the CNI_PATH directories (first match wins). Error 4 for a relative or
 * empty CNI_PATH, 104 when no directory has it.
 */
export function findInPath(type: string, path: readonly string[]): string {
  validatePluginType(type, 'type');
  if (path.length === 0) throw invalidEnv(['CNI_PATH'], `CNI_PATH is empty: cannot find plugin "${type}"`);
  const relative = path.filter((d) => !d.startsWith('/'));
  if (relative.length > 0) {
    throw invalidEnv(['CNI_PATH'], `CNI_PATH has relative entries ${JSON.stringify(relative)}; only absolute directories are searched`);
  }
  for (const dir of path) {
    const file = join(dir, type);
    try {
      if (!statSync(file).isFile()) continue;
      accessSync(file, FS.X_OK);
      return file;
    } catch {
      /* next directory */
    }
  }
  throw new CniError(CNI_ERR.PLUGIN_NOT_FOUND, `failed to find plugin "${type}" in path ${JSON.stringify(path)}`, { object: type });
}

export interface ExecPluginOptions {
  command: CniCommand;
  /** the request whose environment (CNI_CONTAINERID, CNI_NETNS, …, and everything else) is passed on */
  req: CniRequest;
  /** stdin for the plugin (default: the request's stdin, unchanged) */
  stdin?: Buffer | string;
  /** kill the plugin after this long (default 120 s) */
  timeoutMs?: number;
}

/** The environment a delegated plugin gets: ours, with the CNI variables of `command` set. */
export function delegateEnv(req: CniRequest, command: CniCommand): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.env)) if (v !== undefined) env[k] = v;
  env.CNI_COMMAND = command;
  const set = (k: string, v: string) => {
    if (v === '') delete env[k];
    else env[k] = v;
  };
  set('CNI_CONTAINERID', req.containerId);
  set('CNI_NETNS', req.netns);
  set('CNI_IFNAME', req.ifname);
  set('CNI_ARGS', req.args);
  set('CNI_PATH', req.path.join(':'));
  return env;
}

let execaModule: typeof import('execa') | undefined;

/**
 * Executes the plugin `file` and returns its stdout. A non-zero exit becomes the CniError the plugin
 * printed (its code, msg and details), or error 105 when it printed none.
 */
export async function execPlugin(file: string, opts: ExecPluginOptions): Promise<string> {
  execaModule ??= await import('execa'); // ~50 ms to load: only paths that exec pay for it
  const name = file.slice(file.lastIndexOf('/') + 1);
  let r;
  for (let attempt = 0; ; attempt++) {
    r = await execaModule.execa(file, [], {
      input: opts.stdin ?? opts.req.stdin,
      env: delegateEnv(opts.req, opts.command),
      extendEnv: false,
      timeout: opts.timeoutMs ?? 120_000,
      killSignal: 'SIGKILL',
      reject: false,
      stripFinalNewline: false,
      encoding: 'utf8',
      maxBuffer: 16 * 1024 * 1024,
    });
    // The binary may be being replaced right now (libcni retries too).
    if ((r as { code?: string }).code === 'ETXTBSY' && attempt < 5) {
      await new Promise((res) => setTimeout(res, 200));
      continue;
    }
    break;
  }
  const stdout = String(r.stdout ?? '');
  const stderr = String(r.stderr ?? '').trim();
  if (r.exitCode === 0 && !r.timedOut && !r.signal) return stdout;
  let printed: unknown;
  try {
    printed = JSON.parse(stdout);
  } catch {
    /* not JSON */
  }
  const p = printed as { code?: unknown; msg?: unknown; details?: unknown } | undefined;
  if (p && typeof p === 'object' && typeof p.code === 'number' && Number.isInteger(p.code)) {
    return Promise.reject(
      new CniError(p.code, typeof p.msg === 'string' ? p.msg : `plugin ${name} failed with code ${p.code}`, {
        details: typeof p.details === 'string' ? p.details : undefined,
        op: `${opts.command} ${name}`,
        object: name,
      }),
    );
  }
  const how = r.timedOut ? `timed out after ${opts.timeoutMs ?? 120_000} ms` : r.signal ? `was killed by ${r.signal}` : `exited ${r.exitCode}`;
  const said = stderr || stdout.trim();
  throw new CniError(CNI_ERR.DELEGATE_FAILED, `plugin ${name} ${how}${said ? `: ${said.slice(0, 500)}` : ' without an error message'}`, {
    op: `${opts.command} ${name}`,
    object: name,
  });
}

/** Plugins a caller serves in process instead of executing them: `type` → how to load the plugin. */
export type InProcessPlugins = Readonly<Record<string, () => Promise<CniPlugin>>>;

export interface DelegateOptions {
  /** stdin for the delegate (default: the request's, unchanged — the complete config) */
  stdin?: Buffer | string;
  /** plugins run in process rather than by exec, by `type` (default: none) */
  plugins?: InProcessPlugins;
  /** use `plugins` (default true; NETPLUMB_IPAM_EXEC=1 in the request's environment turns it off) */
  inProcess?: boolean;
  timeoutMs?: number;
}

/**
 * Runs plugin `type` for `command` with the request's environment and (by default) its stdin. ADD answers
 * the delegate's Result in the 1.1.0 model; other verbs answer undefined. Errors are CniErrors carrying
 * the delegate's own code.
 */
export async function delegate(type: string, command: CniCommand, req: CniRequest, opts: DelegateOptions = {}): Promise<CniResult | undefined> {
  validatePluginType(type, 'type');
  const inProcess = opts.inProcess ?? req.env.NETPLUMB_IPAM_EXEC !== '1';
  const load = inProcess && Object.hasOwn(opts.plugins ?? {}, type) ? opts.plugins![type] : undefined;
  if (load !== undefined) {
    const plugin = await load();
    // What an executed plugin would see: our environment with the verb set, and the same stdin.
    const subEnv = delegateEnv(req, command);
    const sub = parseRequest(subEnv, opts.stdin === undefined ? req.stdin : Buffer.from(opts.stdin), parseEnv(subEnv), plugin.fields);
    try {
      switch (command) {
        case 'ADD':
          return await plugin.add(sub);
        case 'DEL':
          return void (await plugin.del(sub));
        case 'CHECK':
          return void (await plugin.check(sub));
        case 'GC':
          return void (await plugin.gc?.(sub));
        case 'STATUS':
          return void (await plugin.status?.(sub));
        default:
          throw new CniError(CNI_ERR.INVALID_ENVIRONMENT, `cannot delegate ${command}`);
      }
    } catch (e) {
      throw toCniError(e); // the same CniError the executable would have printed
    }
  }
  const file = findInPath(type, req.path);
  const stdout = await execPlugin(file, { command, req, stdin: opts.stdin, timeoutMs: opts.timeoutMs });
  if (command !== 'ADD') return undefined;
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch {
    throw new CniError(CNI_ERR.DELEGATE_FAILED, `plugin ${type} printed no JSON Result: ${stdout.trim().slice(0, 200)}`, { object: type });
  }
  return parseResult(json, { defaultVersion: req.cniVersion, code: CNI_ERR.DELEGATE_FAILED, what: `Result of plugin ${type}` });
}
