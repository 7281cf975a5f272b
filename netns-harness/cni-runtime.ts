/**
 * A container runtime as CNI plugins see one: it execs plugins from CNI_PATH with the CNI_* environment
 * and the network configuration on stdin, reads stdout and the exit status, and runs network configuration
 * lists the way libcni does (capabilities → runtimeConfig, prevResult chaining, DEL in reverse order with
 * the cached result, CHECK with the cached result, GC with cni.dev/valid-attachments). Used by the e2e
 * tests to drive netplumb's plugins and the reference plugins alike.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { agentSocketFor } from './agent.js';
import type { NetnsHolder } from './holder.js';
import { RUN_ID_ENV, runId } from './run-id.js';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';

export interface Attachment {
  containerId: string;
  /** CNI_NETNS; may be empty for DEL */
  netns: string;
  ifname: string;
  /** CNI_ARGS as key/value pairs, or exactly as given (a string) */
  args?: Record<string, string> | string;
  /** values for the capabilities plugins declare (portMappings, ips, mac, bandwidth, …) */
  capabilityArgs?: Record<string, unknown>;
}

export interface PluginRun {
  command: CniCommand;
  plugin: string;
  /** what was sent on stdin (bytes and files described) */
  stdin: string;
  exitCode: number;
  /** the signal that ended the plugin, if one did */
  signal: string | undefined;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON, when it is JSON */
  json: any;
  /** exit status 0, not killed */
  ok: boolean;
  /** died of SIGKILL (a fault point's kill, or the time limit) */
  killed: boolean;
  /** killed because it ran longer than its time limit */
  timedOut: boolean;
  ms: number;
}

export class CniPluginError extends Error {
  constructor(
    readonly run: PluginRun,
    what = `${run.plugin} ${run.command}`,
  ) {
    super(`${what} failed (exit ${run.exitCode}${run.signal ? `, ${run.signal}` : ''}): ${run.stdout.trim()} ${run.stderr.trim().slice(0, 2000)}`);
  }
}

/** Returns the run if the plugin succeeded; throws CniPluginError (with its output) otherwise. */
export function must(r: PluginRun, what?: string): PluginRun {
  if (!r.ok) throw new CniPluginError(r, what);
  return r;
}

export interface PluginExec {
  /** the executable */
  file: string;
  /** the complete environment besides PATH and the run ID (nothing else is inherited, as from a runtime) */
  env: Record<string, string | undefined>;
  /** stdin: text or bytes, or a file to read it from (`/dev/zero`: an endless stream) */
  stdin?: string | Buffer | { file: string } | undefined;
  /** the network namespace to run in (a namespace file); default the caller's */
  netns?: string | undefined;
  /** argv put before the plugin (setpriv …, capsh …) */
  wrapper?: readonly string[] | undefined;
  /** SIGKILL the plugin after this long (default 60 s): also a way to crash it at a moment nobody chose */
  timeoutMs?: number | undefined;
}

/**
 * The one way the tests execute a plugin: exactly the given environment, stdin from text, bytes or a file,
 * optionally in another namespace (nsenter, which execs, so a kill reaches the plugin itself) and under a
 * privilege-dropping wrapper. Never throws for what the plugin does; the run says how it ended.
 */
export async function execPlugin(x: PluginExec): Promise<PluginRun> {
  const argv = [...(x.netns ? ['nsenter', `--net=${x.netns}`, '--'] : []), ...(x.wrapper ?? []), x.file];
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', [RUN_ID_ENV]: runId() };
  // with NETPLUMB_TEST_AGENT=1, through the agent of that namespace, unless the caller chose (an empty value: none)
  if (!('NETPLUMB_AGENT_SOCKET' in x.env)) {
    const agent = await agentSocketFor(x.netns);
    if (agent !== undefined) env.NETPLUMB_AGENT_SOCKET = agent;
  }
  for (const [k, v] of Object.entries(x.env)) if (v !== undefined) env[k] = v;
  const input = x.stdin;
  const fromFile = typeof input === 'object' && !Buffer.isBuffer(input) ? input.file : undefined;
  const stdinFd = fromFile === undefined ? undefined : openSync(fromFile, 'r');
  const started = Date.now();
  try {
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: [stdinFd ?? 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    if (stdinFd === undefined) {
      child.stdin!.on('error', () => undefined); // the plugin may stop reading (bounded stdin): EPIPE is fine
      child.stdin!.end(input ?? '');
    }
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, x.timeoutMs ?? 60_000);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((res) => {
      child.once('error', () => res([127, null]));
      child.once('close', (c, s) => res([c, s]));
    });
    clearTimeout(timer);
    let json: any;
    try {
      json = stdout.trim() ? JSON.parse(stdout) : undefined;
    } catch {
      json = undefined;
    }
    const exitCode = code ?? (signal ? 128 : -1);
    const stdinText = typeof input === 'string' ? input : Buffer.isBuffer(input) ? `(${input.length} bytes)` : `(from ${fromFile ?? 'nothing'})`;
    return {
      command: (x.env.CNI_COMMAND ?? '') as CniCommand,
      plugin: x.file.split('/').pop()!,
      stdin: stdinText,
      exitCode,
      signal: signal ?? undefined,
      stdout,
      stderr,
      json,
      // a kill that came as the plugin was exiting anyway is no kill: what counts is how the process ended
      ok: exitCode === 0 && signal === null,
      killed: signal === 'SIGKILL',
      timedOut,
      ms: Date.now() - started,
    };
  } finally {
    if (stdinFd !== undefined) closeSync(stdinFd);
  }
}

export interface CniRuntimeOptions {
  /** directories searched for plugins, in order (CNI_PATH) */
  cniPath: string[];
  /** the namespace plugins run in (the "host"); default: the caller's */
  host?: NetnsHolder | undefined;
  /** extra environment for every plugin */
  env?: Record<string, string>;
  timeoutMs?: number;
}

export interface ExecOptions {
  /** the plugin to run (found in CNI_PATH, or an absolute path); default: the configuration's `type` */
  plugin?: string | undefined;
  /** more environment for this run (NETPLUMB_FAULT=…); undefined removes a variable */
  env?: Record<string, string | undefined> | undefined;
  /** SIGKILL the plugin after this long */
  timeoutMs?: number | undefined;
  /** argv put before the plugin (setpriv …, capsh …) */
  wrapper?: readonly string[] | undefined;
}

export class CniRuntime {
  /** the last result of ADD per attachment, like libcni's cache */
  readonly #cache = new Map<string, any>();

  constructor(readonly opts: CniRuntimeOptions) {}

  /** Path of the plugin executable `type`, as a runtime finds it in CNI_PATH. */
  find(type: string): string {
    for (const dir of this.opts.cniPath) {
      const p = join(dir, type);
      if (existsSync(p)) return p;
    }
    throw new Error(`plugin ${type} not found in ${this.opts.cniPath.join(':')}`);
  }

  /**
   * Executes one plugin once, exactly as a runtime does: CNI_* from the attachment, CNI_PATH, nothing else
   * inherited. `config` is sent as given (a string) or as JSON; `command` may be anything, to test refusals.
   */
  async exec(command: CniCommand | (string & {}), config: unknown, att: Partial<Attachment> = {}, o: ExecOptions = {}): Promise<PluginRun> {
    const plugin = o.plugin ?? (config as { type: string }).type;
    const env: Record<string, string | undefined> = {
      CNI_COMMAND: command,
      CNI_PATH: this.opts.cniPath.join(':'),
      ...this.opts.env,
    };
    if (att.containerId !== undefined) env.CNI_CONTAINERID = att.containerId;
    if (att.netns !== undefined) env.CNI_NETNS = att.netns;
    if (att.ifname !== undefined) env.CNI_IFNAME = att.ifname;
    // with NETPLUMB_TEST_AGENT=1, through the agent of the host's namespace (started with it, gone with it)
    const agent = await agentSocketFor(this.opts.host);
    if (agent !== undefined) env.NETPLUMB_AGENT_SOCKET = agent;
    if (att.args !== undefined) {
      env.CNI_ARGS =
        typeof att.args === 'string'
          ? att.args
          : Object.entries(att.args)
              .map(([k, v]) => `${k}=${v}`)
              .join(';');
    }
    Object.assign(env, o.env);
    return execPlugin({
      file: plugin.startsWith('/') ? plugin : this.find(plugin),
      env,
      stdin: typeof config === 'string' ? config : JSON.stringify(config),
      netns: this.opts.host?.netnsPath,
      wrapper: o.wrapper,
      timeoutMs: o.timeoutMs ?? this.opts.timeoutMs ?? 60_000,
    });
  }

  /** The configuration libcni would give plugin `i` of `list`. */
  pluginConfig(list: NetworkConfigList, i: number, att: Partial<Attachment>, prevResult?: unknown, extra: Record<string, unknown> = {}): any {
    const plugin = list.plugins[i]!;
    const conf: any = { ...plugin, name: list.name, cniVersion: list.cniVersion };
    const caps = plugin.capabilities as Record<string, boolean> | undefined;
    if (caps && att.capabilityArgs) {
      const rc: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(att.capabilityArgs)) if (caps[k]) rc[k] = v;
      if (Object.keys(rc).length) conf.runtimeConfig = { ...(conf.runtimeConfig ?? {}), ...rc };
    }
    if (prevResult !== undefined) conf.prevResult = prevResult;
    return { ...conf, ...extra };
  }

  #key(list: NetworkConfigList, att: Partial<Attachment>): string {
    return `${list.name}/${att.containerId}/${att.ifname}`;
  }

  /** ADD through the whole list; returns the final result. A failure throws, like libcni (the caller then DELs). */
  async add(list: NetworkConfigList, att: Attachment): Promise<any> {
    let prev: unknown;
    for (let i = 0; i < list.plugins.length; i++) {
      const r = must(await this.exec('ADD', this.pluginConfig(list, i, att, prev), att));
      prev = r.json;
    }
    this.#cache.set(this.#key(list, att), prev);
    return prev;
  }

  /** CHECK through the list with the cached result. */
  async check(list: NetworkConfigList, att: Attachment): Promise<void> {
    const prev = this.#cache.get(this.#key(list, att));
    for (let i = 0; i < list.plugins.length; i++) must(await this.exec('CHECK', this.pluginConfig(list, i, att, prev), att));
  }

  /** DEL through the list in reverse order with the cached result (if any). */
  async del(list: NetworkConfigList, att: Attachment): Promise<void> {
    const key = this.#key(list, att);
    const prev = this.#cache.get(key);
    for (let i = list.plugins.length - 1; i >= 0; i--) must(await this.exec('DEL', this.pluginConfig(list, i, att, prev), att));
    this.#cache.delete(key);
  }

  /** GC (CNI 1.1) for every plugin of the list, naming the attachments that are still valid. */
  async gc(list: NetworkConfigList, valid: { containerId: string; ifname: string }[]): Promise<void> {
    const validAttachments = valid.map((v) => ({ containerID: v.containerId, ifname: v.ifname }));
    for (let i = 0; i < list.plugins.length; i++) {
      must(await this.exec('GC', this.pluginConfig(list, i, {}, undefined, { 'cni.dev/valid-attachments': validAttachments })));
    }
  }

  /** STATUS (CNI 1.1) for every plugin of the list. */
  async status(list: NetworkConfigList): Promise<void> {
    for (let i = 0; i < list.plugins.length; i++) must(await this.exec('STATUS', this.pluginConfig(list, i, {})));
  }

  /** VERSION of one plugin. */
  async version(type: string, cniVersion = '1.1.0'): Promise<{ cniVersion: string; supportedVersions: string[] }> {
    return must(await this.exec('VERSION', { cniVersion }, {}, { plugin: type })).json;
  }
}

export interface NetworkConfigList {
  cniVersion: string;
  name: string;
  plugins: ({ type: string; capabilities?: Record<string, boolean> } & Record<string, unknown>)[];
  [k: string]: unknown;
}
