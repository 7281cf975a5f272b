/**
 * Allow rules of `icc: false` networks as set elements: validation, and the elements a rule set stands for.
 * A rule lets traffic from some addresses to others of one bridge, to listed ports, in one direction (replies
 * pass by conntrack, in the bridge's icc chain). Each (from, to, protocol, port) is one element of `allow4` or
 * `allow6`, so a packet costs one set lookup however many rules there are; the pairs also go into `peers4`
 * (ARP, both orders) and `nd6` (neighbour discovery: unicast both ways and to the solicited-node address).
 * See docs/FIREWALL.md ("Inside a network") for the rest.
 */
import { formatIp, tryParseIp, type Family as IpFamily } from '../addr/ip.js';
import { ERR } from '../errors.js';
import { POLICY_SETS, type PolicySetName } from './layout.js';
import { FirewallError } from './nft.js';

export type PolicyProtocol = 'tcp' | 'udp' | 'sctp';

/** One allow rule, with addresses already resolved from container names (by the caller). */
export interface AllowRule {
  /** source addresses (one container's, or several) */
  from: readonly string[];
  /** destination addresses (one container's) */
  to: readonly string[];
  ports: readonly { protocol: PolicyProtocol; port: number }[];
}

/** The most elements one bridge's rules may expand to: far beyond any real use, small enough for one transaction. */
export const MAX_POLICY_ELEMENTS = 20000;

export interface PolicyElement {
  set: PolicySetName;
  key: { concat: (string | number)[] };
}

function invalid(object: string, msg: string, code: string = ERR.INVALID_ARG_VALUE): FirewallError {
  return new FirewallError(`allow rule: ${msg}`, { code, op: 'policy', object });
}

function addresses(list: unknown, field: string): { family: IpFamily; text: string }[] {
  if (!Array.isArray(list) || list.length === 0) throw invalid(field, `"${field}" must be a non-empty list of addresses`);
  return list.map((a) => {
    const ip = typeof a === 'string' ? tryParseIp(a) : undefined;
    if (ip === undefined) throw invalid(field, `${JSON.stringify(a)} in "${field}" is not an IP address`, ERR.INVALID_ADDRESS);
    return { family: ip.family, text: formatIp(ip) };
  });
}

const SOLICITED_NODE_PREFIX = tryParseIp('ff02::1:ff00:0')!.value;

/** ff02::1:ffXX:XXXX, where a neighbour solicitation for `address` goes. */
export function solicitedNode(address: string): string {
  const ip = tryParseIp(address)!;
  return formatIp({ family: 6, value: SOLICITED_NODE_PREFIX | (ip.value & 0xffffffn) });
}

/** Checks every rule (addresses, ports 1-65535, protocols) and returns the elements they stand for on `bridge`. */
export function policyElements(bridge: string, rules: readonly AllowRule[]): PolicyElement[] {
  if (!Array.isArray(rules)) throw invalid('rules', 'the rules must be a list');
  const out = new Map<string, PolicyElement>();
  const byRule = new Map<string, number>();
  let rule = 0;
  const put = (set: PolicySetName, ...items: (string | number)[]) => {
    const key = { concat: set === 'peers4' ? items : [bridge, ...items] };
    const id = `${set} ${JSON.stringify(key)}`;
    if (set === 'allow4' || set === 'allow6') {
      const earlier = byRule.get(id);
      if (earlier !== undefined && earlier !== rule) {
        throw invalid(`rules[${rule}]`, `rule ${rule} overlaps rule ${earlier}: both allow ${items[0]} to ${items[1]} on ${items[3]}/${items[2]}`);
      }
      byRule.set(id, rule);
    }
    out.set(id, { set, key });
  };
  rules.forEach((r, i) => {
    rule = i;
    const from = addresses(r?.from, `rules[${i}].from`);
    const to = addresses(r?.to, `rules[${i}].to`);
    if (!Array.isArray(r.ports) || r.ports.length === 0) throw invalid(`rules[${i}].ports`, `rule ${i} names no port`);
    for (const p of r.ports) {
      if (!['tcp', 'udp', 'sctp'].includes(p?.protocol)) throw invalid(`rules[${i}].ports`, `protocol ${JSON.stringify(p?.protocol)} must be tcp, udp or sctp`);
      if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535)
        throw invalid(`rules[${i}].ports`, `port ${JSON.stringify(p.port)} must be an integer 1-65535`);
    }
    for (const f of from) {
      for (const t of to) {
        if (f.family !== t.family || f.text === t.text) continue;
        for (const p of r.ports) put(f.family === 4 ? 'allow4' : 'allow6', f.text, t.text, p.protocol, p.port);
        if (f.family === 4) {
          put('peers4', f.text, t.text);
          put('peers4', t.text, f.text);
        } else {
          put('nd6', f.text, t.text);
          put('nd6', t.text, f.text);
          put('nd6', f.text, solicitedNode(t.text));
          put('nd6', t.text, solicitedNode(f.text));
        }
      }
    }
    if (out.size > MAX_POLICY_ELEMENTS) {
      throw invalid(
        'rules',
        `the rules expand to more than ${MAX_POLICY_ELEMENTS} set elements on bridge ${bridge}: too many to be reasonable`,
        ERR.INVALID_ARG_VALUE,
      );
    }
  });
  return [...out.values()];
}

/** Whether a listed element of a policy set belongs to `bridge` (peers4 carries no bridge: pass its allowed pairs). */
export function elementOfBridge(set: PolicySetName, key: unknown, bridge: string): boolean {
  const k = (key as { concat?: unknown[] } | null)?.concat;
  return set !== 'peers4' && Array.isArray(k) && k[0] === bridge;
}

/** Whether a listed element names one of `addresses` (canonical text), as source, destination or solicited-node. */
export function elementNames(set: PolicySetName, key: unknown, addresses: ReadonlySet<string>): boolean {
  const k = (key as { concat?: unknown[] } | null)?.concat;
  if (!Array.isArray(k)) return false;
  const ips = (set === 'peers4' ? k.slice(0, 2) : k.slice(1, 3)).map(String);
  return ips.some((a) => addresses.has(a) || (set === 'nd6' && [...addresses].some((x) => x.includes(':') && solicitedNode(x) === a)));
}

export const POLICY_SET_NAMES = Object.keys(POLICY_SETS) as PolicySetName[];
