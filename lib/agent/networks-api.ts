/**
 * The network routes of the API, for the `netplumb` command (lib/cli/network-ops.ts, agentOps): the same verbs
 * and shapes as its in-process ones, done by lib/networks in the agent.
 *
 *   GET    /v1/networks                         [{...Network, endpoints}]
 *   POST   /v1/networks               {spec}     Network
 *   GET    /v1/networks/NAME                    NetworkInspect
 *   DELETE /v1/networks/NAME[?force=1]          {}
 *   POST   /v1/networks/NAME/connect  {target, ip?, mac?, publish?, name?}   Endpoint
 *   POST   /v1/networks/NAME/disconnect {target}                            Endpoint
 *   GET    /v1/networks/NAME/policy                                         [PolicyRuleView]
 *   POST   /v1/networks/NAME/policy   {from: [ep], to: ep, ports: [{protocol, port}]}   PolicyRuleView
 *   DELETE /v1/networks/NAME/policy/ID                                      PolicyRuleView
 *
 * Only the fields named are taken from a body (never a state root or a CNI_PATH); every value is then validated
 * by lib/networks as for the command. Errors: {message, code} with 400 (EINVAL), 404 (ENOENT), 409 (EEXIST),
 * 500 otherwise.
 */
import {
  allowTraffic, connect, createNetwork, disconnect, listPolicy, removeRule, inspectNetwork, listEndpoints, listNetworks, parseTarget, pruneNetwork, removeNetwork,
  type NetworkSpec, type PublishedPort,
} from '../networks/index.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

const SPEC_KEYS: Record<keyof NetworkSpec, 'string' | 'boolean'> = {
  name: 'string', subnet: 'string', gateway: 'string', internal: 'boolean', masquerade: 'boolean', ipv6Subnet: 'string', ipv6Gateway: 'string', bridge: 'string', icc: 'boolean',
};

function object(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'the body must be a JSON object', 'EINVAL');
  return body as Record<string, unknown>;
}

function str(o: Record<string, unknown>, key: string, required: boolean): string | undefined {
  const v = o[key];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string' || v.length === 0 || v.length > 4096) throw new ApiError(400, `"${key}" must be a non-empty string`, 'EINVAL');
  return v;
}

function specOf(body: unknown): NetworkSpec {
  const o = object(body);
  const spec: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    const type = (SPEC_KEYS as Record<string, string>)[k];
    if (type === undefined) throw new ApiError(400, `unknown field "${k}"`, 'EINVAL');
    if (typeof v !== type) throw new ApiError(400, `"${k}" must be a ${type}`, 'EINVAL');
    spec[k] = v;
  }
  str(o, 'name', true);
  return spec as unknown as NetworkSpec;
}

function publishOf(v: unknown): PublishedPort[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length > 256) throw new ApiError(400, '"publish" must be a list', 'EINVAL');
  return v.map((p) => {
    const o = object(p);
    const port = (x: unknown) => (Number.isInteger(x) && (x as number) >= 1 && (x as number) <= 65535 ? (x as number) : undefined);
    const hostPort = port(o.hostPort);
    const containerPort = port(o.containerPort);
    if (hostPort === undefined || containerPort === undefined || (o.protocol !== 'tcp' && o.protocol !== 'udp')) {
      throw new ApiError(400, 'each published port needs hostPort, containerPort (1-65535) and protocol tcp|udp', 'EINVAL');
    }
    const hostIP = o.hostIP === undefined ? undefined : str(o, 'hostIP', true);
    return { hostPort, containerPort, protocol: o.protocol, ...(hostIP ? { hostIP } : {}) };
  });
}

/** The error answer of a failure (a NetplumbError's code chooses the status). */
export function apiErrorOf(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  const code = (e as { code?: unknown })?.code;
  const status = code === 'ENOENT' ? 404 : code === 'EEXIST' ? 409 : code === 'EINVAL' || (typeof code === 'string' && code.startsWith('ERR_INVALID')) ? 400 : code === 'EBUSY' ? 409 : 500;
  return new ApiError(status, e instanceof Error ? e.message : String(e), typeof code === 'string' ? code : undefined);
}

/**
 * Serves one /v1/networks… request; resolves with [status, JSON answer], or undefined when `path` is none of
 * these routes.
 */
export async function networksRoute(method: string, url: string, body: () => Promise<unknown>): Promise<[number, unknown] | undefined> {
  const u = new URL(url, 'http://netplumb');
  const p = /^\/v1\/networks\/([^/]+)\/policy(?:\/([^/]+))?$/.exec(u.pathname);
  if (p) return policyRoute(method, decodeURIComponent(p[1]!), p[2] === undefined ? undefined : decodeURIComponent(p[2]), body);
  const m = /^\/v1\/networks(?:\/([^/]+)(?:\/(connect|disconnect))?)?$/.exec(u.pathname);
  if (!m) return undefined;
  const name = m[1] === undefined ? undefined : decodeURIComponent(m[1]);
  const verb = m[2];
  if (name === undefined) {
    if (method === 'GET') return [200, listNetworks().map((n) => ({ ...n, endpoints: listEndpoints(n.name).length }))];
    if (method === 'POST') return [201, createNetwork(specOf(await body()))];
  } else if (verb === undefined) {
    if (method === 'GET') return [200, await inspectNetwork(name)];
    if (method === 'DELETE') {
      await removeNetwork(name, { force: u.searchParams.get('force') === '1' });
      return [200, {}];
    }
  } else if (method === 'POST') {
    const o = object(await body());
    const target = parseTarget(str(o, 'target', true)!);
    if (verb === 'disconnect') {
      await pruneNetwork(name);
      return [200, await disconnect(name, target)];
    }
    const ip = str(o, 'ip', false);
    const mac = str(o, 'mac', false);
    const publish = publishOf(o.publish);
    const alias = str(o, 'name', false);
    return [200, await connect(name, target, { ...(ip ? { ip } : {}), ...(mac ? { mac } : {}), ...(publish ? { publish } : {}), ...(alias ? { name: alias } : {}) })];
  }
  throw new ApiError(405, `${method} is not allowed on ${u.pathname}`, 'EINVAL');
}

async function policyRoute(method: string, name: string, id: string | undefined, body: () => Promise<unknown>): Promise<[number, unknown]> {
  if (id === undefined && method === 'GET') return [200, listPolicy(name)];
  if (id === undefined && method === 'POST') {
    const o = object(await body());
    for (const k of Object.keys(o)) if (!['from', 'to', 'ports'].includes(k)) throw new ApiError(400, `unknown field "${k}"`, 'EINVAL');
    if (!Array.isArray(o.from) || !o.from.every((f) => typeof f === 'string')) throw new ApiError(400, '"from" must be a list of endpoint names', 'EINVAL');
    return [201, await allowTraffic(name, { from: o.from as string[], to: str(o, 'to', true)!, ports: o.ports as never })];
  }
  if (id !== undefined && method === 'DELETE') return [200, await removeRule(name, id)];
  throw new ApiError(405, `${method} is not allowed on /v1/networks/${name}/policy${id === undefined ? '' : `/${id}`}`, 'EINVAL');
}
