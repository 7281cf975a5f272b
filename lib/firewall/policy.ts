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
import { isRecordMarker, POLICY_SETS, type PolicySetName } from './layout.js';
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

/**
 * What an allowed pair needs beside its allow elements, to resolve each other's link-layer address: ARP both
 * ways (`peers4`), or neighbour discovery unicast and to the solicited-node address both ways (`nd6`).
 */
export function neighbourElements(bridge: string, family: IpFamily, from: string, to: string): PolicyElement[] {
  if (family === 4)
    return [
      { set: 'peers4', key: { concat: [from, to] } },
      { set: 'peers4', key: { concat: [to, from] } },
    ];
  return [
    [from, to],
    [to, from],
    [from, solicitedNode(to)],
    [to, solicitedNode(from)],
  ].map(([x, y]) => ({ set: 'nd6', key: { concat: [bridge, x!, y!] } }));
}

/** Checks every rule (addresses, ports 1-65535, protocols) and returns the elements they stand for on `bridge`. */
export function policyElements(bridge: string, rules: readonly AllowRule[]): PolicyElement[] {
  if (!Array.isArray(rules)) throw invalid('rules', 'the rules must be a list');
  const out = new Map<string, PolicyElement>();
  const byRule = new Map<string, number>();
  const put = (e: PolicyElement, rule: number) => {
    const id = `${e.set} ${JSON.stringify(e.key)}`;
    if (e.set === 'allow4' || e.set === 'allow6') {
      const earlier = byRule.get(id);
      if (earlier !== undefined && earlier !== rule) {
        const [, from, to, proto, port] = e.key.concat;
        throw invalid(`rules[${rule}]`, `rule ${rule} overlaps rule ${earlier}: both allow ${from} to ${to} on ${port}/${proto}`);
      }
      byRule.set(id, rule);
    }
    out.set(id, e);
  };
  rules.forEach((r, i) => {
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
        const set = f.family === 4 ? 'allow4' : 'allow6';
        for (const p of r.ports) put({ set, key: { concat: [bridge, f.text, t.text, p.protocol, p.port] } }, i);
        for (const e of neighbourElements(bridge, f.family, f.text, t.text)) put(e, i);
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

/**
 * The elements an allow element stands for (itself and its neighbour elements), from its listed key
 * (`bridge . from . to . protocol . port`), or [] for a key of another shape or a record's marker.
 */
export function elementsOfAllowKey(family: IpFamily, key: unknown): PolicyElement[] {
  const k = (key as { concat?: unknown[] } | null)?.concat;
  if (!Array.isArray(k) || k.length !== 5 || !k.slice(0, 3).every((x) => typeof x === 'string') || isRecordMarker(key)) return [];
  const [bridge, from, to] = k as string[];
  return [{ set: family === 4 ? 'allow4' : 'allow6', key: { concat: k as (string | number)[] } }, ...neighbourElements(bridge!, family, from!, to!)];
}

/** Whether a listed element of a policy set belongs to `bridge` (peers4 carries no bridge: pass its allowed pairs). */
export function elementOfBridge(set: PolicySetName, key: unknown, bridge: string): boolean {
  const k = (key as { concat?: unknown[] } | null)?.concat;
  return set !== 'peers4' && Array.isArray(k) && k[0] === bridge;
}

export const POLICY_SET_NAMES = Object.keys(POLICY_SETS) as PolicySetName[];
