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
 * by lib/networks as for the command. Errors: {message, code} with the status of STATUS_BY_CODE (400 bad input,
 * 404 not found, 409 exists or in use), 500 otherwise.
 */
import { ERR, NetplumbError } from '../errors.js';
import {
  allowTraffic,
  connect,
  createNetwork,
  disconnect,
  listPolicy,
  removeRule,
  inspectNetwork,
  listEndpoints,
  listNetworks,
  parseTarget,
  pruneNetwork,
  removeNetwork,
  type NetworkSpec,
  type PublishedPort,
} from '../networks/index.js';

/** An error answer of the API: its HTTP status, and the code and message of the `{message, code}` body. */
export class ApiError extends NetplumbError {
  constructor(
    readonly status: number,
    message: string,
    code: string = ERR.AGENT,
    init: { op?: string | undefined; object?: string | undefined; cause?: unknown } = {},
  ) {
    super(message, { code, op: init.op ?? 'netplumbd', object: init.object, cause: init.cause });
  }
}

/**
 * The HTTP status of an error code (docs/AGENT.md); any other code is 500. netplumb's own codes, and the
 * kernel's errnos of the same meaning.
 */
export const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  [ERR.INVALID_ARG_VALUE]: 400,
  [ERR.INVALID_NAME]: 400,
  [ERR.INVALID_ADDRESS]: 400,
  [ERR.INVALID_MAC]: 400,
  [ERR.NETNS_SELF]: 400,
  [ERR.NOT_A_NETNS]: 400,
  [ERR.NOT_FOUND]: 404,
  [ERR.EXISTS]: 409,
  [ERR.IN_USE]: 409,
  EINVAL: 400,
  ENOENT: 404,
  ESRCH: 404,
  EEXIST: 409,
  EBUSY: 409,
};

const SPEC_KEYS: Record<keyof NetworkSpec, 'string' | 'boolean'> = {
  name: 'string',
  subnet: 'string',
  gateway: 'string',
  internal: 'boolean',
  masquerade: 'boolean',
  ipv6Subnet: 'string',
  ipv6Gateway: 'string',
  bridge: 'string',
  icc: 'boolean',
};

function object(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'the body must be a JSON object', ERR.INVALID_ARG_VALUE);
  return body as Record<string, unknown>;
}

function str(o: Record<string, unknown>, key: string, required: boolean): string | undefined {
  const v = o[key];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string' || v.length === 0 || v.length > 4096) throw new ApiError(400, `"${key}" must be a non-empty string`, ERR.INVALID_ARG_VALUE);
  return v;
}

function specOf(body: unknown): NetworkSpec {
  const o = object(body);
  const spec: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    const type = (SPEC_KEYS as Record<string, string>)[k];
    if (type === undefined) throw new ApiError(400, `unknown field "${k}"`, ERR.INVALID_ARG_VALUE);
    if (typeof v !== type) throw new ApiError(400, `"${k}" must be a ${type}`, ERR.INVALID_ARG_VALUE);
    spec[k] = v;
  }
  str(o, 'name', true);
  return spec as unknown as NetworkSpec;
}

function publishOf(v: unknown): PublishedPort[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length > 256) throw new ApiError(400, '"publish" must be a list', ERR.INVALID_ARG_VALUE);
  return v.map((p) => {
    const o = object(p);
    const port = (x: unknown) => (Number.isInteger(x) && (x as number) >= 1 && (x as number) <= 65535 ? (x as number) : undefined);
    const hostPort = port(o.hostPort);
    const containerPort = port(o.containerPort);
    if (hostPort === undefined || containerPort === undefined || (o.protocol !== 'tcp' && o.protocol !== 'udp')) {
      throw new ApiError(400, 'each published port needs hostPort, containerPort (1-65535) and protocol tcp|udp', ERR.INVALID_ARG_VALUE);
    }
    const hostIP = o.hostIP === undefined ? undefined : str(o, 'hostIP', true);
    return { hostPort, containerPort, protocol: o.protocol, ...(hostIP ? { hostIP } : {}) };
  });
}

/** The error answer of a failure (a NetplumbError's code chooses the status). */
export function apiErrorOf(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  const code = (e as { code?: unknown })?.code;
  const status = (typeof code === 'string' ? STATUS_BY_CODE[code] : undefined) ?? 500;
  const inner = e instanceof NetplumbError ? e : undefined;
  return new ApiError(status, e instanceof Error ? e.message : String(e), typeof code === 'string' ? code : undefined, {
    op: inner?.op,
    object: inner?.object,
    cause: e,
  });
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
    return [
      200,
      await connect(name, target, { ...(ip ? { ip } : {}), ...(mac ? { mac } : {}), ...(publish ? { publish } : {}), ...(alias ? { name: alias } : {}) }),
    ];
  }
  throw new ApiError(405, `${method} is not allowed on ${u.pathname}`, ERR.INVALID_ARG_VALUE);
}

async function policyRoute(method: string, name: string, id: string | undefined, body: () => Promise<unknown>): Promise<[number, unknown]> {
  if (id === undefined && method === 'GET') return [200, listPolicy(name)];
  if (id === undefined && method === 'POST') {
    const o = object(await body());
    for (const k of Object.keys(o)) if (!['from', 'to', 'ports'].includes(k)) throw new ApiError(400, `unknown field "${k}"`, ERR.INVALID_ARG_VALUE);
    if (!Array.isArray(o.from) || !o.from.every((f) => typeof f === 'string'))
      throw new ApiError(400, '"from" must be a list of endpoint names', ERR.INVALID_ARG_VALUE);
    return [201, await allowTraffic(name, { from: o.from as string[], to: str(o, 'to', true)!, ports: o.ports as never })];
  }
  if (id !== undefined && method === 'DELETE') return [200, await removeRule(name, id)];
  throw new ApiError(405, `${method} is not allowed on /v1/networks/${name}/policy${id === undefined ? '' : `/${id}`}`, ERR.INVALID_ARG_VALUE);
}
