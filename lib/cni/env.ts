/**
 * The CNI environment: CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH, with the
 * spec's requirements per verb (ADD and CHECK need all four of command, container, netns and ifname; DEL
 * may come without CNI_NETNS; VERSION, STATUS and GC need only the command) and its syntax rules, each
 * violation an error 4 that names the variables.
 * See docs/CNI.md for the rest.
 */
import { ifnameProblem, isValidContainerId, MAX_CONTAINER_ID_BYTES } from '../names.js';
import { invalidEnv } from './errors.js';

export const COMMANDS = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'] as const;
export type CniCommand = (typeof COMMANDS)[number];

export interface CniEnv {
  command: CniCommand;
  /** '' for VERSION, STATUS and GC */
  containerId: string;
  /** may be '' (DEL, STATUS, GC, VERSION) */
  netns: string;
  /** '' for VERSION, STATUS and GC */
  ifname: string;
  /** CNI_ARGS as given (`K=V;K2=V2`) */
  args: string;
  /** CNI_PATH split on ':', empty entries dropped (not yet checked for being absolute) */
  path: string[];
}

const REQUIRED: Record<CniCommand, readonly string[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME'],
  VERSION: [],
  STATUS: [],
  GC: [],
};

export function isCommand(c: string): c is CniCommand {
  return (COMMANDS as readonly string[]).includes(c);
}

/** Parses and validates the CNI environment (error 4 naming the variables on any violation). */
export function parseEnv(env: Readonly<Record<string, string | undefined>>): CniEnv {
  const get = (k: string) => env[k] ?? '';
  const command = get('CNI_COMMAND');
  if (command === '') throw invalidEnv(['CNI_COMMAND'], 'required environment variable CNI_COMMAND is missing');
  if (!isCommand(command)) throw invalidEnv(['CNI_COMMAND'], `unknown CNI_COMMAND ${JSON.stringify(command)}`);
  const missing = REQUIRED[command].filter((k) => get(k) === '');
  if (missing.length > 0) {
    throw invalidEnv(missing, `required environment variables [${missing.join(',')}] missing for ${command}`);
  }
  const needsAttachment = REQUIRED[command].length > 0;
  const containerId = needsAttachment ? get('CNI_CONTAINERID') : '';
  const ifname = needsAttachment ? get('CNI_IFNAME') : '';
  const bad: string[] = [];
  const why: string[] = [];
  if (needsAttachment && !isValidContainerId(containerId)) {
    bad.push('CNI_CONTAINERID');
    why.push(
      `CNI_CONTAINERID ${JSON.stringify(containerId.slice(0, 64))}${containerId.length > 64 ? '…' : ''} is longer than ${MAX_CONTAINER_ID_BYTES} characters or has characters outside [a-zA-Z0-9][a-zA-Z0-9_.-]*`,
    );
  }
  const p = needsAttachment ? ifnameProblem(ifname) : undefined;
  if (p !== undefined) {
    bad.push('CNI_IFNAME');
    why.push(`CNI_IFNAME ${JSON.stringify(ifname)} ${p}`);
  }
  const args = get('CNI_ARGS');
  try {
    parseCniArgs(args);
  } catch {
    bad.push('CNI_ARGS');
    why.push(`CNI_ARGS ${JSON.stringify(args)} is not K=V pairs separated by ";"`);
  }
  if (bad.length > 0) throw invalidEnv(bad, why.join('; '));
  return {
    command,
    containerId,
    netns: get('CNI_NETNS'),
    ifname,
    args,
    path: get('CNI_PATH')
      .split(':')
      .filter((p) => p !== ''),
  };
}

/**
 * CNI_ARGS `K=V;K2=V2` → entries, in order. Every pair must have exactly one `=` and a non-empty key
 * (libcni's rule). Throws error 4 naming CNI_ARGS.
 */
export function parseCniArgs(args: string): Array<[string, string]> {
  if (args === '') return [];
  return args.split(';').map((pair) => {
    const kv = pair.split('=');
    if (kv.length !== 2 || kv[0] === '') throw invalidEnv(['CNI_ARGS'], `CNI_ARGS: invalid pair ${JSON.stringify(pair)}`);
    return [kv[0]!, kv[1]!];
  });
}

/**
 * The values of the `known` keys of CNI_ARGS. Any other key is an error 4 unless `IgnoreUnknown` is true
 * (`1`/`true`, any case) — libcni's rule, so that runtimes that pass K8S_POD_NAME etc. set IgnoreUnknown.
 */
export function cniArgsValues(args: string, known: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  const unknown: string[] = [];
  let ignoreUnknown = false;
  for (const [k, v] of parseCniArgs(args)) {
    if (k === 'IgnoreUnknown') {
      const b = v.toLowerCase();
      if (b === '1' || b === 'true') ignoreUnknown = true;
      else if (b === '0' || b === 'false') ignoreUnknown = false;
      else throw invalidEnv(['CNI_ARGS'], `CNI_ARGS: IgnoreUnknown must be 1, 0, true or false, not ${JSON.stringify(v)}`);
    } else if (known.includes(k)) out.set(k, v);
    else unknown.push(`${k}=${v}`);
  }
  if (unknown.length > 0 && !ignoreUnknown) {
    throw invalidEnv(['CNI_ARGS'], `CNI_ARGS: unknown args ${JSON.stringify(unknown)} (set IgnoreUnknown=1 to ignore them)`);
  }
  return out;
}
