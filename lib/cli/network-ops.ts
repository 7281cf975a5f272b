/**
 * The network verbs behind `netplumb network …`, `connect` and `disconnect`, done either by netplumbd (when
 * its socket answers: a member of its group needs no root) or in process by lib/networks (as root). Both
 * give the same shapes, so the commands print the same tables and JSON either way.
 *
 * The agent's routes (lib/agent): GET/POST /v1/networks, GET/DELETE /v1/networks/NAME[?force=1],
 * POST /v1/networks/NAME/connect {target, ip, mac, publish, name}, POST /v1/networks/NAME/disconnect {target}.
 */
import { accessSync, constants as FS } from 'node:fs';
import { dirname } from 'node:path';
import { checkCapabilities, type Capability } from '../cni/caps.js';
import { CniError } from '../cni/errors.js';
import {
  allowTraffic,
  listPolicy,
  removeRule,
  type AllowRequest,
  type PolicyRuleView,
  connect,
  createNetwork,
  disconnect,
  inspectNetwork,
  listEndpoints,
  listNetworks,
  parseTarget,
  pruneNetwork,
  removeNetwork,
  stateRoot,
  type Endpoint,
  type Network,
  type NetworkInspect,
  type NetworkSpec,
  type PublishedPort,
} from '../networks/index.js';
import { openAgent, type AgentClient } from './agent-client.js';
import { CliError, EXIT } from './output.js';

export interface NetworkSummary extends Network {
  /** attached endpoints */
  endpoints: number;
}

export interface ConnectRequest {
  ip?: string;
  mac?: string;
  publish?: PublishedPort[];
  name?: string;
}

export interface NetworkOps {
  /** 'agent' (through netplumbd) or 'local' (in process) */
  readonly via: 'agent' | 'local';
  create(spec: NetworkSpec): Promise<Network>;
  list(): Promise<NetworkSummary[]>;
  inspect(name: string): Promise<NetworkInspect>;
  remove(name: string, force: boolean, onProgress?: (done: number, total: number) => void): Promise<void>;
  connect(network: string, target: string, req: ConnectRequest): Promise<Endpoint>;
  disconnect(network: string, target: string): Promise<Endpoint>;
  allow(network: string, req: AllowRequest): Promise<PolicyRuleView>;
  listPolicy(network: string): Promise<PolicyRuleView[]>;
  removeRule(network: string, id: string): Promise<PolicyRuleView>;
}

const HINT = 'run netplumb as root, or start netplumbd and use it as a member of its group';

/** Refuses at once, naming what is missing, when this process lacks `caps` (so nothing is changed). */
export function requireCapabilities(command: string, caps: readonly Capability[]): void {
  try {
    checkCapabilities(`netplumb ${command}`, caps);
  } catch (e) {
    if (e instanceof CniError) throw new CliError(`${e.message}: ${HINT}`, EXIT.NOT_PERMITTED, { code: e.code, op: e.op, object: e.object, cause: e });
    throw e;
  }
}

/** Refuses unless the state directory (or the nearest existing parent) is writable by this process. */
export function requireWritableState(command: string): void {
  let p = stateRoot();
  for (;;) {
    try {
      accessSync(p, FS.W_OK);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || p === '/') {
        throw new CliError(`netplumb ${command} cannot write ${stateRoot()} (${(e as NodeJS.ErrnoException).code}): ${HINT}`, EXIT.NOT_PERMITTED, {
          code: (e as NodeJS.ErrnoException).code,
          op: 'access',
          object: p,
          cause: e,
        });
      }
      p = dirname(p);
    }
  }
}

/** Refuses unless the state directory can be read (it is 0700, root's). */
function requireReadableState(command: string): void {
  try {
    accessSync(stateRoot(), FS.R_OK | FS.X_OK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new CliError(`netplumb ${command} cannot read ${stateRoot()} (${(e as NodeJS.ErrnoException).code}): ${HINT}`, EXIT.NOT_PERMITTED, {
      code: (e as NodeJS.ErrnoException).code,
      op: 'access',
      object: stateRoot(),
      cause: e,
    });
  }
}

const KERNEL: Capability[] = ['CAP_NET_ADMIN', 'CAP_SYS_ADMIN'];

/** The verbs done in process by lib/networks, each checking its privileges first. */
export const localOps: NetworkOps = {
  via: 'local',
  async create(spec) {
    requireWritableState('network create');
    return createNetwork(spec);
  },
  async list() {
    requireReadableState('network ls');
    return listNetworks().map((n) => ({ ...n, endpoints: listEndpoints(n.name).length }));
  },
  async inspect(name) {
    requireReadableState('network inspect');
    if (listEndpoints(name).length > 0) requireCapabilities('network inspect', KERNEL); // may release stale endpoints
    return inspectNetwork(name);
  },
  async remove(name, force, onProgress) {
    requireCapabilities('network rm', KERNEL);
    requireWritableState('network rm');
    await removeNetwork(name, { force, ...(onProgress ? { onProgress } : {}) });
  },
  async connect(network, target, req) {
    const t = parseTarget(target);
    requireCapabilities('connect', KERNEL);
    requireWritableState('connect');
    return connect(network, t, req);
  },
  async disconnect(network, target) {
    const t = parseTarget(target);
    requireCapabilities('disconnect', KERNEL);
    requireWritableState('disconnect');
    await pruneNetwork(network);
    return disconnect(network, t);
  },
  async allow(network, req) {
    requireCapabilities('policy allow', KERNEL);
    requireWritableState('policy allow');
    return allowTraffic(network, req);
  },
  async listPolicy(network) {
    requireReadableState('policy ls');
    return listPolicy(network);
  },
  async removeRule(network, id) {
    requireCapabilities('policy rm', KERNEL);
    requireWritableState('policy rm');
    return removeRule(network, id);
  },
};

/** The same verbs through netplumbd's API. */
export function agentOps(agent: AgentClient): NetworkOps {
  const path = (name: string, rest = '') => `/v1/networks/${encodeURIComponent(name)}${rest}`;
  return {
    via: 'agent',
    create: (spec) => agent.request('POST', '/v1/networks', spec),
    list: () => agent.request('GET', '/v1/networks'),
    inspect: (name) => agent.request('GET', path(name)),
    remove: (name, force) => agent.request('DELETE', path(name, force ? '?force=1' : '')),
    connect: (network, target, req) => agent.request('POST', path(network, '/connect'), { target, ...req }),
    disconnect: (network, target) => agent.request('POST', path(network, '/disconnect'), { target }),
    allow: (network, req) => agent.request('POST', path(network, '/policy'), req),
    listPolicy: (network) => agent.request('GET', path(network, '/policy')),
    removeRule: (network, id) => agent.request('DELETE', path(network, `/policy/${encodeURIComponent(id)}`)),
  };
}

/**
 * The agent's verbs when netplumbd answers and serves networks (NETPLUMB_NO_AGENT=1 skips it), else the
 * in-process ones.
 */
export async function networkOps(): Promise<NetworkOps> {
  if (process.env.NETPLUMB_NO_AGENT === '1') return localOps;
  const agent = await openAgent();
  if (!agent) return localOps;
  try {
    await agent.request('GET', '/v1/networks');
    return agentOps(agent);
  } catch {
    return localOps; // an agent without the network routes
  }
}
