/**
 * Allow rules of an `icc: false` network (`netplumb policy allow|ls|rm`, `connect --link`): endpoints named
 * as for connect (name, target text or container ID), resolved to their addresses, and the network's whole
 * rule set handed to lib/firewall, which replaces the bridge's elements in one transaction. The file is
 * written only after the firewall took the rules, so a refused rule changes nothing.
 */
import { randomBytes } from 'node:crypto';
import { ERR, NetplumbError } from '../errors.js';
import { setAllowRules, type AllowRule } from '../firewall/index.js';
import { listEndpoints, type Endpoint } from './endpoints.js';
import { readPolicy, writePolicy, type PolicyProtocol, type PolicyRule } from './policy-store.js';

export { parsePortSpec } from './policy-store.js';
import { checkNetworkName, getNetwork, type Network, type StoreOptions } from './store.js';

/** More rules than this on one network is not a policy but a mistake (1000 rules per network are measured). */
export const MAX_RULES_PER_NETWORK = 4096;

export interface AllowRequest {
  /** endpoints that may open connections */
  from: string[];
  /** the endpoint they may reach */
  to: string;
  ports: { protocol: PolicyProtocol; port: number }[];
}

/** A rule as listed: its endpoints' names beside their container IDs. */
export interface PolicyRuleView extends PolicyRule {
  fromNames: string[];
  toName: string;
}

function usage(message: string, object?: string): NetplumbError {
  return new NetplumbError(message, { code: ERR.INVALID_ARG_VALUE, op: 'policy', object });
}

function findEndpoint(eps: readonly Endpoint[], ref: string, network: string): Endpoint {
  const ep = eps.find((e) => e.name === ref || e.containerId === ref || e.target === ref);
  if (!ep)
    throw new NetplumbError(`no endpoint ${JSON.stringify(ref)} on network ${network} (see: netplumb network inspect ${network})`, {
      code: ERR.NOT_FOUND,
      op: 'policy',
      object: ref,
    });
  return ep;
}

const label = (e: Endpoint | undefined, id: string) => e?.name ?? e?.target ?? id;

function checkPorts(ports: unknown): { protocol: PolicyProtocol; port: number }[] {
  if (!Array.isArray(ports) || ports.length === 0 || ports.length > 1024) throw usage('a rule needs 1 to 1024 ports');
  return ports.map((p) => {
    const { protocol, port } = (p ?? {}) as { protocol?: unknown; port?: unknown };
    if (protocol !== 'tcp' && protocol !== 'udp' && protocol !== 'sctp') throw usage(`protocol ${JSON.stringify(protocol)} must be tcp, udp or sctp`);
    if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) throw usage(`port ${JSON.stringify(port)} must be an integer 1-65535`);
    return { protocol, port: port as number };
  });
}

function resolve(rules: readonly PolicyRule[], eps: readonly Endpoint[]): AllowRule[] {
  const addrs = (id: string) => eps.find((e) => e.containerId === id)?.addresses.map((a) => a.split('/')[0]!) ?? [];
  return rules.map((r) => ({ from: r.from.flatMap(addrs), to: addrs(r.to), ports: r.ports })).filter((r) => r.from.length > 0 && r.to.length > 0);
}

async function apply(net: Network, rules: readonly PolicyRule[], opts: StoreOptions): Promise<void> {
  await setAllowRules(net.bridge, resolve(rules, listEndpoints(net.name, opts)));
  writePolicy(net.name, rules, opts);
}

/**
 * Lets `from` open connections to `to` on `ports` (replies pass by conntrack). Errors, with nothing changed:
 * EINVAL for a network with icc on, bad ports, a rule overlapping another, too many rules; ENOENT for an
 * endpoint not attached.
 */
export async function allowTraffic(network: string, req: AllowRequest, opts: StoreOptions = {}): Promise<PolicyRuleView> {
  const net = getNetwork(checkNetworkName(network), opts);
  if (net.icc !== false)
    throw usage(`network ${network} lets every endpoint reach every other (icc on): allow rules need a network created with --icc=false`, network);
  if (!Array.isArray(req.from) || req.from.length === 0 || req.from.length > 256) throw usage('a rule needs 1 to 256 sources (--from)');
  const ports = checkPorts(req.ports);
  const eps = listEndpoints(network, opts);
  const from = [...new Set(req.from.map((f) => findEndpoint(eps, f, network).containerId))];
  const to = findEndpoint(eps, req.to, network).containerId;
  if (from.includes(to)) throw usage(`a rule from ${req.to} to itself means nothing: an endpoint always reaches itself`, req.to);
  const rules = readPolicy(network, opts);
  if (rules.length >= MAX_RULES_PER_NETWORK)
    throw usage(`network ${network} has ${rules.length} rules already, the most allowed (${MAX_RULES_PER_NETWORK})`, network);
  for (const r of rules) {
    const port = r.ports.find((p) => ports.some((q) => q.protocol === p.protocol && q.port === p.port));
    if (r.to === to && port && r.from.some((f) => from.includes(f))) {
      throw new NetplumbError(
        `the rule overlaps rule ${r.id}, which allows ${port.port}/${port.protocol} to ${req.to} already (see: netplumb policy ls ${network})`,
        { code: ERR.EXISTS, op: 'policy', object: r.id },
      );
    }
  }
  const rule: PolicyRule = { id: randomBytes(6).toString('hex'), from, to, ports, created: new Date().toISOString() };
  await apply(net, [...rules, rule], opts);
  return view(rule, eps);
}

function view(r: PolicyRule, eps: readonly Endpoint[]): PolicyRuleView {
  const ep = (id: string) => eps.find((e) => e.containerId === id);
  return { ...r, fromNames: r.from.map((f) => label(ep(f), f)), toName: label(ep(r.to), r.to) };
}

/** The network's rules, with the names of their endpoints. */
export function listPolicy(network: string, opts: StoreOptions = {}): PolicyRuleView[] {
  getNetwork(checkNetworkName(network), opts);
  const eps = listEndpoints(network, opts);
  return readPolicy(network, opts).map((r) => view(r, eps));
}

/** Removes a rule by ID (connections it let open stay until they end). ENOENT when there is none. */
export async function removeRule(network: string, id: string, opts: StoreOptions = {}): Promise<PolicyRuleView> {
  const net = getNetwork(checkNetworkName(network), opts);
  const rules = readPolicy(network, opts);
  const rule = rules.find((r) => r.id === id);
  if (!rule)
    throw new NetplumbError(`network ${network} has no rule ${JSON.stringify(id)} (see: netplumb policy ls ${network})`, {
      code: ERR.NOT_FOUND,
      op: 'policy',
      object: id,
    });
  await apply(
    net,
    rules.filter((r) => r !== rule),
    opts,
  );
  return view(rule, listEndpoints(network, opts));
}
