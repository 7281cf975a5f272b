/**
 * The nftables layout netplumb owns, and the JSON commands that build it.
 *
 *   table inet netplumb                                   table bridge netplumb
 *     map masq4/masq6      saddr            → jump c-…-post     map spoof   iifname (host veth) → jump c-…-spoof
 *     map ports            nfproto.l4proto.dport → jump c-…-dnat chain prerouting  filter, prio -300: iifname vmap @spoof
 *     map hostports4/6     daddr.l4proto.dport   → jump c-…-dnat chain c-<tag>-spoof   (one per container)
 *     map isolation_from/_to  bridge        → jump b-…-from/-to
 *     set bridges          every netplumb bridge
 *     chain prerouting / output   nat, dstnat: published ports
 *     chain postrouting           nat, srcnat: localhost SNAT, masquerade, hairpin
 *     chain forward               filter: isolation between bridges
 *     chain guard                 filter, prerouting -300: no 127/8 from a bridge (CVE-2020-8558)
 *     chain c-<tag>-post / c-<tag>-dnat   one pair per container attachment
 *     chain b-<hash>-from / b-<hash>-to   one pair per bridge
 *
 * Every per-container object is named by the attachment's tag, `<hash of network>-<hash of ifname+container
 * ID>`, and dispatch is by verdict-map elements whose data (`jump c-<tag>-…`) names their owner. So a DEL
 * needs nothing but the container ID, interface and network to find exactly its own elements and chains, and
 * the kernel refuses to delete a chain that an element still points at.
 * See docs/FIREWALL.md for the rest.
 */
import { createHash } from 'node:crypto';
import { formatIp, tryParseCidr, type Family as IpFamily } from '../addr/ip.js';
import type { NftCommand } from './nft.js';

/** A container address as the rules write it: canonical text of the address and of its network (lib/addr). */
export interface IpPrefix {
  family: IpFamily;
  address: string;
  prefix: number;
  network: string;
}

/** `10.88.0.2/16`, `fd00::2/64` or a bare address (a host prefix) as the rules write it; undefined if invalid. */
export function ipPrefix(text: string): IpPrefix | undefined {
  const c = tryParseCidr(text, { bare: true });
  if (c === undefined) return undefined;
  return {
    family: c.family,
    address: formatIp({ family: c.family, value: c.ip }),
    prefix: c.prefix,
    network: formatIp({ family: c.family, value: c.network }),
  };
}

export const TABLE = 'netplumb';
export type Family = 'inet' | 'bridge';

/** Verdict maps and what keys they hold. */
export const MAPS = {
  masq4: { family: 'inet', type: 'ipv4_addr' },
  masq6: { family: 'inet', type: 'ipv6_addr' },
  ports: { family: 'inet', type: ['nf_proto', 'inet_proto', 'inet_service'] },
  hostports4: { family: 'inet', type: ['ipv4_addr', 'inet_proto', 'inet_service'] },
  hostports6: { family: 'inet', type: ['ipv6_addr', 'inet_proto', 'inet_service'] },
  isolation_from: { family: 'inet', type: 'ifname' },
  isolation_to: { family: 'inet', type: 'ifname' },
  spoof: { family: 'bridge', type: 'ifname' },
  icc: { family: 'inet', type: ['ifname', 'ifname'] },
  icc_ports: { family: 'bridge', type: 'ifname' },
} as const satisfies Record<string, { family: Family; type: string | readonly string[] }>;
export type MapName = keyof typeof MAPS;
/** Maps whose elements dispatch to a container's chains; the others (isolation_from/_to, icc) dispatch per bridge. */
export const CONTAINER_MAPS: readonly MapName[] = ['masq4', 'masq6', 'ports', 'hostports4', 'hostports6', 'spoof', 'icc_ports'];
/** Maps whose keys are published ports: a key held by another container is a conflict, never taken over. */
export const PORT_MAPS: readonly MapName[] = ['ports', 'hostports4', 'hostports6'];

export type ChainKind = 'post' | 'dnat' | 'spoof' | 'icc';
export const CHAIN_FAMILY: Record<ChainKind, Family> = { post: 'inet', dnat: 'inet', spoof: 'bridge', icc: 'bridge' };

/**
 * The allow sets of `icc: false` networks (filled by lib/firewall/policy.ts): the bridge is the first key so
 * that equal addresses on two bridges never mix. `peers4` (bridge family, where ARP is seen) holds both
 * orders of every allowed pair; `nd6` the pairs neighbour discovery needs (unicast and solicited-node).
 */
export const POLICY_SETS = {
  allow4: { family: 'inet', type: ['ifname', 'ipv4_addr', 'ipv4_addr', 'inet_proto', 'inet_service'] },
  allow6: { family: 'inet', type: ['ifname', 'ipv6_addr', 'ipv6_addr', 'inet_proto', 'inet_service'] },
  nd6: { family: 'inet', type: ['ifname', 'ipv6_addr', 'ipv6_addr'] },
  peers4: { family: 'bridge', type: ['ipv4_addr', 'ipv4_addr'] },
} as const satisfies Record<string, { family: Family; type: readonly string[] }>;
export type PolicySetName = keyof typeof POLICY_SETS;

/**
 * An icc: false attachment's record of the allow elements naming it (`c-<tag>-pol4`/`-pol6`, inet, typed as
 * allow4/allow6): made empty by its ADD, filled by setAllowRules beside the allow sets in one transaction,
 * read and deleted by its DEL. So a DEL lists only what names its own container, never the allow sets,
 * whose size is the number of rules. A named set, not an element per rule elsewhere: every transaction
 * loads the table's sets (≈ 5 µs each here), so there is one per attachment, never one per address or rule.
 */
export function policyRecord(tag: string, family: 4 | 6): string {
  return `c-${tag}-pol${family}`;
}

const POLICY_RECORD = /^c-([0-9a-f]{12}-[0-9a-f]{16})-pol([46])$/;

/**
 * A record's generation: an element no rule makes (source = destination, bridge `-`), replaced by every
 * transaction that writes the record. A DEL deletes the one it read by name, so a record written after the DEL
 * read it fails the DEL's transaction, which reads again — instead of deleting, with the record, an element
 * that would then name a container that is gone.
 */
export function recordMarker(family: 4 | 6, generation: number): { concat: (string | number)[] } {
  const any = family === 4 ? '0.0.0.0' : '::';
  return { concat: ['-', any, any, 'tcp', generation] };
}

/** Whether a listed element of a record is its generation marker. */
export function isRecordMarker(key: unknown): boolean {
  const k = (key as { concat?: unknown[] } | null)?.concat;
  return Array.isArray(k) && k[0] === '-' && k[1] === k[2];
}

/** The tag and family of a policy record's name, or undefined for any other set. */
export function parsePolicyRecord(name: string): { tag: string; family: 4 | 6 } | undefined {
  const m = POLICY_RECORD.exec(name);
  return m ? { tag: m[1]!, family: m[2] === '4' ? 4 : 6 } : undefined;
}

function hex(text: string, len: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, len);
}

export function networkHash(network: string): string {
  return hex(`network\0${network}`, 12);
}

/** The tag that names every object of one attachment (network, interface, container). */
export function attachmentTag(network: string, ifname: string, containerId: string): string {
  return `${networkHash(network)}-${hex(`attachment\0${ifname}\0${containerId}`, 16)}`;
}

export function containerChain(tag: string, kind: ChainKind): string {
  return `c-${tag}-${kind}`;
}

const CONTAINER_CHAIN = /^c-([0-9a-f]{12}-[0-9a-f]{16})-(post|dnat|spoof|icc)$/;

/** The tag and kind of a per-container chain name, or undefined for any other chain. */
export function parseContainerChain(name: string): { tag: string; kind: ChainKind } | undefined {
  const m = CONTAINER_CHAIN.exec(name);
  return m ? { tag: m[1]!, kind: m[2] as ChainKind } : undefined;
}

export function bridgeChain(bridge: string, dir: 'from' | 'to' | 'icc'): string {
  return `b-${hex(`bridge\0${bridge}`, 12)}-${dir}`;
}

export function digest(value: unknown): string {
  return hex(JSON.stringify(value), 8);
}

/** Rule comment: `np:<digest of the chain's rules> id=… if=… net=…`, printable ASCII, at most 127 bytes. */
export function ruleComment(chainDigest: string, ids: { containerId: string; ifname: string; network: string }): string {
  const text = `np:${chainDigest} id=${ids.containerId} if=${ids.ifname} net=${ids.network}`.replace(/[^\x20-\x7e]/g, '?');
  return text.slice(0, 127);
}

export function parseRuleComment(comment: string | undefined): { digest: string; containerId?: string; ifname?: string; network?: string } | undefined {
  const m = /^np:([0-9a-f]{8})(?: id=(\S*))?(?: if=(\S*))?(?: net=(.*))?$/.exec(comment ?? '');
  if (!m) return undefined;
  return { digest: m[1]!, containerId: m[2], ifname: m[3], network: m[4] };
}

// ── expressions (nftables JSON) ───────────────────────────────────────────────────────────────────────

export type Expr = Record<string, unknown>;
const meta = (key: string): Expr => ({ meta: { key } });
const payload = (protocol: string, field: string): Expr => ({ payload: { protocol, field } });
const match = (left: Expr, right: unknown, op: '==' | '!=' | 'in' = '=='): Expr => ({ match: { op, left, right } });
const set = (items: unknown[]): Expr => ({ set: items });
const prefix = (p: { network: string; prefix: number }): Expr => ({ prefix: { addr: p.network, len: p.prefix } });
const vmap = (key: Expr, map: MapName): Expr => ({ vmap: { key, data: `@${map}` } });
const concat = (...items: Expr[]): Expr => ({ concat: items });
const ctDnat = match({ ct: { key: 'status' } }, 'dnat', 'in');
const RETURN: Expr = { return: null };
const DROP: Expr = { drop: null };
const COUNTER: Expr = { counter: null };
const MASQUERADE: Expr = { masquerade: null };
const ipOf = (f: 4 | 6) => (f === 4 ? 'ip' : 'ip6');

// ── commands ──────────────────────────────────────────────────────────────────────────────────────────

const obj = (family: Family, extra: Record<string, unknown>) => ({ family, table: TABLE, ...extra });
export const cmd = {
  addTable: (family: Family): NftCommand => ({ add: { table: { family, name: TABLE } } }),
  deleteTable: (family: Family): NftCommand => ({ delete: { table: { family, name: TABLE } } }),
  addChain: (family: Family, name: string): NftCommand => ({ add: { chain: obj(family, { name }) } }),
  createChain: (family: Family, name: string): NftCommand => ({ create: { chain: obj(family, { name }) } }),
  flushChain: (family: Family, name: string): NftCommand => ({ flush: { chain: obj(family, { name }) } }),
  deleteChain: (family: Family, name: string): NftCommand => ({ delete: { chain: obj(family, { name }) } }),
  addRule: (family: Family, chain: string, expr: Expr[], comment?: string): NftCommand => ({
    add: { rule: obj(family, { chain, expr, ...(comment === undefined ? {} : { comment }) }) },
  }),
  addMapElement: (map: MapName, key: unknown, chain: string): NftCommand => ({
    add: { element: obj(MAPS[map].family, { name: map, elem: [[key, { jump: { target: chain } }]] }) },
  }),
  deleteElement: (family: Family, name: string, key: unknown): NftCommand => ({ delete: { element: obj(family, { name, elem: [key] }) } }),
  addSetElement: (family: Family, name: string, key: unknown): NftCommand => ({ add: { element: obj(family, { name, elem: [key] }) } }),
  addSet: (family: Family, name: string, type: string | readonly string[]): NftCommand => ({ add: { set: obj(family, { name, type }) } }),
  deleteSet: (family: Family, name: string): NftCommand => ({ delete: { set: obj(family, { name }) } }),
};

function baseChain(family: Family, name: string, type: 'nat' | 'filter', hook: string, prio: number): NftCommand {
  return { add: { chain: obj(family, { name, type, hook, prio, policy: 'accept' }) } };
}

/**
 * Tables, maps, sets and base chains with their fixed rules. Idempotent and self-repairing: every ADD sends it
 * in its own transaction (`add` of what exists is a no-op; base chains are flushed and refilled atomically).
 */
export function skeleton(): NftCommand[] {
  const out: NftCommand[] = [cmd.addTable('inet'), cmd.addTable('bridge')];
  for (const [name, m] of Object.entries(MAPS)) {
    out.push({ add: { map: obj(m.family, { name, type: m.type, map: 'verdict' }) } });
  }
  out.push(cmd.addSet('inet', 'bridges', 'ifname'));
  for (const [name, st] of Object.entries(POLICY_SETS)) out.push(cmd.addSet(st.family, name, st.type));

  const portDispatch = [
    [vmap(concat(payload('ip', 'daddr'), meta('l4proto'), payload('th', 'dport')), 'hostports4')],
    [vmap(concat(payload('ip6', 'daddr'), meta('l4proto'), payload('th', 'dport')), 'hostports6')],
    [match({ fib: { result: 'type', flags: ['daddr'] } }, 'local'), vmap(concat(meta('nfproto'), meta('l4proto'), payload('th', 'dport')), 'ports')],
  ];
  const base: [Family, string, 'nat' | 'filter', string, number, Expr[][]][] = [
    ['inet', 'prerouting', 'nat', 'prerouting', -100, portDispatch],
    ['inet', 'output', 'nat', 'output', -100, portDispatch],
    [
      'inet',
      'postrouting',
      'nat',
      'postrouting',
      100,
      [
        // 127.0.0.1:hostPort DNATed to a container keeps its loopback source: give it the bridge's address.
        [ctDnat, match(meta('oifname'), '@bridges'), match(payload('ip', 'saddr'), prefix({ network: '127.0.0.0', prefix: 8 })), MASQUERADE],
        [vmap(payload('ip', 'saddr'), 'masq4')],
        [vmap(payload('ip6', 'saddr'), 'masq6')],
      ],
    ],
    [
      'inet',
      'forward',
      'filter',
      'forward',
      0,
      [
        // Published ports are public: reaching one through the host's address crosses bridges by design.
        [ctDnat, RETURN],
        [vmap(meta('iifname'), 'isolation_from')],
        [vmap(meta('oifname'), 'isolation_to')],
        // In and out by the same bridge: bridged between two of its ports (nf_call_iptables, set on icc: false
        // bridges) — or routed back into it, which only published ports do (returned above).
        [vmap(concat(meta('iifname'), meta('oifname')), 'icc')],
      ],
    ],
    [
      // route_localnet (needed for 127.0.0.1 published ports) would otherwise let a container reach the
      // host's loopback services (CVE-2020-8558); priority raw sees the packet before NAT.
      'inet',
      'guard',
      'filter',
      'prerouting',
      -300,
      [[match(meta('iifname'), '@bridges'), match(payload('ip', 'daddr'), prefix({ network: '127.0.0.0', prefix: 8 })), COUNTER, DROP]],
    ],
    ['bridge', 'prerouting', 'filter', 'prerouting', -300, [[vmap(meta('iifname'), 'spoof')]]],
    // ARP between two ports of an icc: false bridge (the inet hooks never see ARP).
    ['bridge', 'forward', 'filter', 'forward', 0, [[vmap(meta('iifname'), 'icc_ports')]]],
  ];
  for (const [family, name, type, hook, prio, rules] of base) {
    out.push(baseChain(family, name, type, hook, prio), cmd.flushChain(family, name));
    for (const r of rules) out.push(cmd.addRule(family, name, r));
  }
  return out;
}

// ── per-bridge isolation ──────────────────────────────────────────────────────────────────────────────

export interface BridgeIsolation {
  network: string;
  bridge: string;
  isolate: boolean;
  allowBridges: readonly string[];
  icc: boolean;
}

/** Registers a bridge and (re)writes its isolation chains. Idempotent: element data is fixed per bridge. */
export function bridgeCommands(b: BridgeIsolation): NftCommand[] {
  const out: NftCommand[] = [cmd.addSetElement('inet', 'bridges', b.bridge)];
  const peers = [b.bridge, ...b.allowBridges.filter((x) => x !== b.bridge)];
  for (const [dir, map, side] of [
    ['from', 'isolation_from', 'oifname'],
    ['to', 'isolation_to', 'iifname'],
  ] as const) {
    const chain = bridgeChain(b.bridge, dir);
    // The chains belong to the bridge, not to the network whose ADD wrote them last: several networks may share
    // a bridge, and an ADD of one must leave nothing that names it behind once its DEL has run.
    const comment = `np:bridge ${b.bridge}`;
    out.push(cmd.addChain('inet', chain), cmd.flushChain('inet', chain));
    if (b.isolate) {
      out.push(cmd.addRule('inet', chain, [match(meta(side), set(peers)), RETURN], comment));
      out.push(cmd.addRule('inet', chain, [match(meta(side), '@bridges'), COUNTER, DROP], comment));
    }
    out.push(cmd.addMapElement(map, b.bridge, chain));
  }
  // Docker's --icc=false: between containers of this bridge only what an allow set names, and replies.
  const icc = bridgeChain(b.bridge, 'icc');
  out.push(cmd.addChain('inet', icc), cmd.flushChain('inet', icc));
  if (!b.icc) {
    const comment = `np:icc ${b.bridge} net=${b.network}`.replace(/[^\x20-\x7e]/g, '?').slice(0, 127);
    const iif = meta('iifname');
    const l4 = [meta('l4proto'), payload('th', 'dport')];
    const rules: Expr[][] = [
      [match({ ct: { key: 'state' } }, ['established', 'related'], 'in'), RETURN],
      [match(concat(iif, payload('ip', 'saddr'), payload('ip', 'daddr'), ...l4), '@allow4'), RETURN],
      [match(concat(iif, payload('ip6', 'saddr'), payload('ip6', 'daddr'), ...l4), '@allow6'), RETURN],
      [
        match(payload('icmpv6', 'type'), set(['nd-neighbor-solicit', 'nd-neighbor-advert'])),
        match(concat(iif, payload('ip6', 'saddr'), payload('ip6', 'daddr')), '@nd6'),
        RETURN,
      ],
      [COUNTER, DROP],
    ];
    for (const r of rules) out.push(cmd.addRule('inet', icc, r, comment));
  }
  out.push(cmd.addMapElement('icc', { concat: [b.bridge, b.bridge] }, icc));
  return out;
}

// ── per-container state ───────────────────────────────────────────────────────────────────────────────

export interface ChainSpec {
  family: Family;
  name: string;
  kind: ChainKind;
  rules: Expr[][];
  digest: string;
  comment: string;
}

export interface ElementSpec {
  map: MapName;
  key: unknown;
  /** canonical text of the key, comparable with a listed one */
  keyId: string;
  chain: string;
}

export interface DesiredState {
  tag: string;
  chains: ChainSpec[];
  elements: ElementSpec[];
  /** the attachment's policy records (inet sets, see policyRecord), on an icc: false bridge */
  records: string[];
}

export interface NormalizedMapping {
  protocol: 'tcp' | 'udp' | 'sctp';
  hostPort: number;
  containerPort: number;
  /** canonical host address, or undefined for every local address of `families` */
  hostIP: string | undefined;
  hostFamily: 4 | 6 | undefined;
}

export interface NormalizedSpec {
  containerId: string;
  ifname: string;
  network: string;
  bridge: string;
  ips: IpPrefix[];
  masquerade: boolean;
  portMappings: NormalizedMapping[];
  spoof: { hostVeth: string; mac: string } | undefined;
  /** set when the network has icc: false: the port whose ARP to other ports is limited to allowed pairs */
  iccPort: string | undefined;
}

export function keyId(key: unknown): string {
  return JSON.stringify(key);
}

export function desiredState(s: NormalizedSpec): DesiredState {
  const tag = attachmentTag(s.network, s.ifname, s.containerId);
  const ids = { containerId: s.containerId, ifname: s.ifname, network: s.network };
  const chains: ChainSpec[] = [];
  const elements: ElementSpec[] = [];
  const addChain = (kind: ChainKind, rules: Expr[][]) => {
    const d = digest(rules);
    chains.push({ family: CHAIN_FAMILY[kind], name: containerChain(tag, kind), kind, rules, digest: d, comment: ruleComment(d, ids) });
  };
  const addElement = (map: MapName, key: unknown, kind: ChainKind) => {
    const id = keyId(key);
    if (!elements.some((e) => e.map === map && e.keyId === id)) elements.push({ map, key, keyId: id, chain: containerChain(tag, kind) });
  };
  const first = (f: 4 | 6) => s.ips.find((p) => p.family === f);

  // Source NAT: hairpin always (replies to a container that reached a published port through the host must
  // come back through the host), masquerade of traffic leaving the network when asked.
  const post: Expr[][] = [
    [ctDnat, match(meta('oifname'), s.bridge), MASQUERADE],
    [match(meta('oifname'), s.bridge), RETURN],
  ];
  if (s.masquerade) {
    for (const f of [4, 6] as const) {
      const seen = new Set<string>();
      for (const p of s.ips.filter((x) => x.family === f)) {
        const k = `${p.network}/${p.prefix}`;
        if (seen.has(k)) continue;
        seen.add(k);
        post.push([match(payload(ipOf(f), 'daddr'), prefix(p)), RETURN]);
      }
      post.push([match(payload(ipOf(f), 'daddr'), prefix(f === 4 ? { network: '224.0.0.0', prefix: 4 } : { network: 'ff00::', prefix: 8 })), RETURN]);
    }
    post.push([MASQUERADE]);
  }
  if (s.ips.length > 0) {
    addChain('post', post);
    for (const p of s.ips) addElement(p.family === 4 ? 'masq4' : 'masq6', p.address, 'post');
  }

  const dnat: Expr[][] = [];
  for (const m of s.portMappings) {
    for (const f of [4, 6] as const) {
      const target = first(f);
      if (target === undefined) continue;
      if (m.hostFamily !== undefined && m.hostFamily !== f) continue;
      const nfproto = f === 4 ? 'ipv4' : 'ipv6';
      const rule: Expr[] = [match(meta('nfproto'), nfproto)];
      if (m.hostIP !== undefined) rule.push(match(payload(ipOf(f), 'daddr'), m.hostIP));
      rule.push(match(meta('l4proto'), m.protocol), match(payload('th', 'dport'), m.hostPort));
      rule.push({ dnat: { family: ipOf(f), addr: target.address, port: m.containerPort } });
      dnat.push(rule);
      if (m.hostIP !== undefined) addElement(f === 4 ? 'hostports4' : 'hostports6', { concat: [m.hostIP, m.protocol, m.hostPort] }, 'dnat');
      else addElement('ports', { concat: [nfproto, m.protocol, m.hostPort] }, 'dnat');
    }
  }
  if (dnat.length > 0) addChain('dnat', dnat);

  if (s.spoof !== undefined) {
    const { mac, hostVeth } = s.spoof;
    const v4 = s.ips.filter((p) => p.family === 4).map((p) => p.address);
    const v6 = s.ips.filter((p) => p.family === 6).map((p) => p.address);
    const etherType = (t: string) => match(payload('ether', 'type'), t);
    const spoof: Expr[][] = [
      [match(payload('ether', 'saddr'), mac, '!='), COUNTER, DROP],
      [etherType('arp'), match(payload('arp', 'saddr ether'), mac, '!='), COUNTER, DROP],
    ];
    if (v4.length > 0) {
      // 0.0.0.0 is the sender of ARP probes (address conflict detection), harmless to caches.
      spoof.push([etherType('arp'), match(payload('arp', 'saddr ip'), set([...v4, '0.0.0.0']), '!='), COUNTER, DROP]);
      spoof.push([etherType('ip'), match(payload('ip', 'saddr'), set(v4), '!='), COUNTER, DROP]);
    }
    if (v6.length > 0) {
      // '::' is the source of duplicate address detection; link-local addresses are the kernel's own choice.
      spoof.push([etherType('ip6'), match(payload('ip6', 'saddr'), set([...v6, '::', { prefix: { addr: 'fe80::', len: 10 } }]), '!='), COUNTER, DROP]);
    }
    // A VLAN tag would hide the inner addresses from the checks above.
    spoof.push([match(payload('ether', 'type'), set(['vlan', '8021ad'])), COUNTER, DROP]);
    addChain('spoof', spoof);
    addElement('spoof', hostVeth, 'spoof');
  }

  const records: string[] = [];
  if (s.iccPort !== undefined) {
    const etherType = payload('ether', 'type');
    addChain('icc', [
      [match(concat(payload('arp', 'saddr ip'), payload('arp', 'daddr ip')), '@peers4'), RETURN],
      [match(etherType, 'arp'), COUNTER, DROP],
      // Every other protocol between two ports (a raw ethertype, IPX, a VLAN tag — whose inner IP the bridge
      // does not hand to the inet hooks): only IP goes on, to the icc chain of the inet forward hook.
      [match(etherType, 'ip', '!='), match(etherType, 'ip6', '!='), COUNTER, DROP],
    ]);
    addElement('icc_ports', s.iccPort, 'icc');
    for (const f of [4, 6] as const) if (first(f) !== undefined) records.push(policyRecord(tag, f));
  }
  return { tag, chains, elements, records };
}

/** Commands that write a chain's rules (after `add`/`create` of the chain). */
export function chainRules(c: ChainSpec): NftCommand[] {
  return c.rules.map((r) => cmd.addRule(c.family, c.name, r, c.comment));
}
