/**
 * A container runtime as CNI plugins see one: it execs plugins from CNI_PATH with the CNI_* environment
 * and the network configuration on stdin, reads stdout and the exit status, and runs network configuration
 * lists the way libcni does (capabilities → runtimeConfig, prevResult chaining, DEL in reverse order with
 * the cached result, CHECK with the cached result, GC with cni.dev/valid-attachments). Used by the e2e
 * tests to drive netplumb's plugins and the reference plugins alike.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { agentSocketFor } from './agent.js';
import { run, type RunResult } from './exec.js';
import type { NetnsHolder } from './holder.js';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';

export interface Attachment {
  containerId: string;
  /** CNI_NETNS; may be empty for DEL */
  netns: string;
  ifname: string;
  /** CNI_ARGS as key/value pairs */
  args?: Record<string, string>;
  /** values for the capabilities plugins declare (portMappings, ips, mac, bandwidth, …) */
  capabilityArgs?: Record<string, unknown>;
}

export interface PluginRun {
  command: CniCommand;
  plugin: string;
  stdin: string;
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON, when it is JSON */
  json: any;
  ok: boolean;
}

export class CniPluginError extends Error {
  constructor(readonly run: PluginRun) {
    super(`${run.plugin} ${run.command} failed (exit ${run.exitCode}): ${run.stdout.trim() || run.stderr.trim()}`);
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

  /** Executes one plugin once, exactly as a runtime does. `stdin` is sent as given (string) or as JSON. */
  async exec(command: CniCommand, config: unknown, att: Partial<Attachment> = {}, type?: string): Promise<PluginRun> {
    const stdin = typeof config === 'string' ? config : JSON.stringify(config);
    const plugin = type ?? (config as { type: string }).type;
    const env: Record<string, string> = {
      CNI_COMMAND: command,
      CNI_PATH: this.opts.cniPath.join(':'),
      ...this.opts.env,
    };
    if (att.containerId !== undefined) env.CNI_CONTAINERID = att.containerId;
    if (att.netns !== undefined) env.CNI_NETNS = att.netns;
    if (att.ifname !== undefined) env.CNI_IFNAME = att.ifname;
    const agent = await agentSocketFor(this.opts.host);
    if (agent !== undefined) env.NETPLUMB_AGENT_SOCKET = agent;
    if (att.args !== undefined) env.CNI_ARGS = Object.entries(att.args).map(([k, v]) => `${k}=${v}`).join(';');
    const r: RunResult = await run([this.find(plugin)], {
      netns: this.opts.host?.netnsPath,
      input: stdin,
      env,
      cleanEnv: true,
      check: false,
      timeoutMs: this.opts.timeoutMs ?? 60_000,
    });
    let json: any;
    try {
      json = r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
    } catch {
      json = undefined;
    }
    return { command, plugin, stdin, exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr, json, ok: r.exitCode === 0 };
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

  #must(r: PluginRun): PluginRun {
    if (!r.ok) throw new CniPluginError(r);
    return r;
  }

  /** ADD through the whole list; returns the final result. A failure throws, like libcni (the caller then DELs). */
  async add(list: NetworkConfigList, att: Attachment): Promise<any> {
    let prev: unknown;
    for (let i = 0; i < list.plugins.length; i++) {
      const r = this.#must(await this.exec('ADD', this.pluginConfig(list, i, att, prev), att));
      prev = r.json;
    }
    this.#cache.set(this.#key(list, att), prev);
    return prev;
  }

  /** CHECK through the list with the cached result. */
  async check(list: NetworkConfigList, att: Attachment): Promise<void> {
    const prev = this.#cache.get(this.#key(list, att));
    for (let i = 0; i < list.plugins.length; i++) this.#must(await this.exec('CHECK', this.pluginConfig(list, i, att, prev), att));
  }

  /** DEL through the list in reverse order with the cached result (if any). */
  async del(list: NetworkConfigList, att: Attachment): Promise<void> {
    const key = this.#key(list, att);
    const prev = this.#cache.get(key);
    for (let i = list.plugins.length - 1; i >= 0; i--) this.#must(await this.exec('DEL', this.pluginConfig(list, i, att, prev), att));
    this.#cache.delete(key);
  }

  /** GC (CNI 1.1) for every plugin of the list, naming the attachments that are still valid. */
  async gc(list: NetworkConfigList, valid: { containerId: string; ifname: string }[]): Promise<void> {
    const validAttachments = valid.map((v) => ({ containerID: v.containerId, ifname: v.ifname }));
    for (let i = 0; i < list.plugins.length; i++) {
      this.#must(await this.exec('GC', this.pluginConfig(list, i, {}, undefined, { 'cni.dev/valid-attachments': validAttachments })));
    }
  }

  /** STATUS (CNI 1.1) for every plugin of the list. */
  async status(list: NetworkConfigList): Promise<void> {
    for (let i = 0; i < list.plugins.length; i++) this.#must(await this.exec('STATUS', this.pluginConfig(list, i, {})));
  }

  /** VERSION of one plugin. */
  async version(type: string, cniVersion = '1.1.0'): Promise<{ cniVersion: string; supportedVersions: string[] }> {
    return this.#must(await this.exec('VERSION', { cniVersion }, {}, type)).json;
  }
}

export interface NetworkConfigList {
  cniVersion: string;
  name: string;
  plugins: ({ type: string; capabilities?: Record<string, boolean> } & Record<string, unknown>)[];
  [k: string]: unknown;
}
