/**
 * What the bridge plugin asks of nftables, as whole operations: each ADD, DEL or GC is one transaction.
 *
 * ADD first tries a transaction that needs no reading: skeleton + bridge + `create` of the container's chains
 * + its elements. `create` fails if the chains exist (a repeated ADD), and adding a key that another
 * container holds fails too; then the state is read and one reconciling transaction replaces exactly this
 * attachment's objects (no duplicates, stale keys of its own removed). DEL, GC and that fallback read first
 * and delete by name and key; each element deletion is preceded by an `add` of the element as it was read,
 * which is a no-op when unchanged and fails the whole transaction if someone changed it in between — a
 * compare-and-delete — after which the operation reads again and retries (bounded).
 * See docs/FIREWALL.md for the rest.
 */
import { formatIp, tryParseIp } from '../addr/ip.js';
import { parseUnicastMac } from '../addr/mac.js';
import { ifnameProblem } from '../names.js';
import { ERR } from '../errors.js';
import {
  attachmentTag,
  bridgeChain,
  bridgeCommands,
  chainRules,
  POLICY_SETS,
  type PolicySetName,
  ipPrefix,
  cmd,
  desiredState,
  MAPS,
  networkHash,
  parseContainerChain,
  isRecordMarker,
  parsePolicyRecord,
  parseRuleComment,
  policyRecord,
  recordMarker,
  PORT_MAPS,
  skeleton,
  type DesiredState,
  type MapName,
  type NormalizedMapping,
  type NormalizedSpec,
} from './layout.js';
import { FirewallError, nftBackend, type FirewallOptions, type NftBackend, type NftCommand } from './nft.js';
import { writeSysctl } from './netns.js';
import { elementOfBridge, elementsOfAllowKey, policyElements, POLICY_SET_NAMES, type AllowRule, type PolicyElement } from './policy.js';
import { byTag, chainKey, readAttachmentState, readState, type Observed, type ObservedElement } from './state.js';
import { commitTracked, type TrackedCommands } from './tracked.js';

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  /** default `tcp` */
  protocol?: 'tcp' | 'udp' | 'sctp' | undefined;
  /** publish only on this local address; `0.0.0.0` = every IPv4 address, `::` = every IPv6 address; default both */
  hostIP?: string | undefined;
}

export interface NetworkFirewall {
  /** CNI network name */
  network: string;
  bridge: string;
  /** drop traffic between this bridge and other netplumb bridges (default true), except `allowBridges` */
  isolate?: boolean | undefined;
  /** bridges this one may exchange traffic with although isolated (both sides must allow if both isolate) */
  allowBridges?: readonly string[] | undefined;
  /** Docker's --icc: containers of this bridge may talk to each other (default true); false needs the bridge's nf_call_iptables */
  icc?: boolean | undefined;
}

export interface ContainerFirewall extends NetworkFirewall {
  containerId: string;
  /** the interface name inside the container (CNI_IFNAME) */
  ifname: string;
  /** the container's addresses with their subnet's prefix length, as in a CNI result: `10.88.0.2/16` */
  ips: readonly string[];
  /** masquerade traffic leaving the network (not to its own subnets, not to multicast); default false */
  masquerade?: boolean | undefined;
  portMappings?: readonly PortMapping[] | undefined;
  /** let the container's veth send only frames with its own MAC and addresses (needs hostVeth and mac) */
  spoofCheck?: boolean | undefined;
  /** host end of the container's veth */
  hostVeth?: string | undefined;
  /** the container interface's MAC */
  mac?: string | undefined;
  /**
   * make 127.0.0.1:hostPort reach the container: sets net.ipv4.conf.<bridge>.route_localnet=1 when a mapping
   * covers 127.0.0.1 (default true)
   */
  localhostPorts?: boolean | undefined;
}

export interface AttachmentRef {
  containerId: string;
  ifname: string;
  network: string;
}

/** One attachment's state as found in the tables. */
export interface FirewallAttachment {
  tag: string;
  /** from the rules' comments; undefined when no rule carries one (or truncated for very long names) */
  containerId: string | undefined;
  ifname: string | undefined;
  network: string | undefined;
  chains: string[];
  /** source addresses dispatched to this attachment's NAT chain */
  addresses: string[];
  ports: { protocol: string; hostPort: number; hostIP: string | undefined; family: 4 | 6 | undefined }[];
  hostVeth: string | undefined;
}

const MAX_ATTEMPTS = 8;

function invalid(field: string, value: unknown, why: string, code: string = ERR.INVALID_ARG_VALUE): FirewallError {
  return new FirewallError(`invalid ${field} ${JSON.stringify(value)}: ${why}`, { code, op: 'firewall', object: field });
}

function checkName(field: string, v: unknown, max = 1024): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max) throw invalid(field, v, `must be a non-empty string of at most ${max} characters`);
  return v;
}

function checkIfname(field: string, v: unknown): string {
  const problem = typeof v === 'string' ? ifnameProblem(v) : 'is not a string';
  if (problem !== undefined) throw invalid(field, v, `must be an interface name: it ${problem}`, ERR.INVALID_NAME);
  return v as string;
}

function checkPort(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) throw invalid(field, v, 'must be an integer 1-65535');
  return v;
}

function normalizeNetwork(n: NetworkFirewall) {
  const allow = n.allowBridges ?? [];
  if (!Array.isArray(allow)) throw invalid('allowBridges', allow, 'must be a list of bridge names');
  return {
    network: checkName('network', n.network),
    bridge: checkIfname('bridge', n.bridge),
    isolate: n.isolate ?? true,
    allowBridges: allow.map((b) => checkIfname('allowBridges[]', b)),
    icc: n.icc ?? true,
  };
}

function normalizeMappings(list: readonly PortMapping[]): NormalizedMapping[] {
  if (!Array.isArray(list)) throw invalid('portMappings', list, 'must be a list');
  const out: NormalizedMapping[] = [];
  const seen = new Map<string, number>();
  for (const m of list) {
    const protocol = (m.protocol ?? 'tcp').toLowerCase();
    if (protocol !== 'tcp' && protocol !== 'udp' && protocol !== 'sctp') throw invalid('portMappings[].protocol', m.protocol, 'must be tcp, udp or sctp');
    const hostPort = checkPort('portMappings[].hostPort', m.hostPort);
    const containerPort = checkPort('portMappings[].containerPort', m.containerPort);
    let hostIP: string | undefined;
    let hostFamily: 4 | 6 | undefined;
    if (m.hostIP !== undefined && m.hostIP !== '') {
      const ip = tryParseIp(m.hostIP);
      if (ip === undefined) throw invalid('portMappings[].hostIP', m.hostIP, 'must be an IPv4 or IPv6 address', ERR.INVALID_ADDRESS);
      hostIP = formatIp(ip);
      hostFamily = ip.family;
      if (hostIP === '0.0.0.0' || hostIP === '::') hostIP = undefined; // every address of that family
    }
    // The same host port of one family mapped twice: harmless if identical, ambiguous otherwise.
    const families = hostFamily === undefined ? [4, 6] : [hostFamily];
    const keys = families.map((f) => `${protocol}/${hostPort}/${hostIP ?? '*'}/${f}`);
    const earlier = keys.map((k) => seen.get(k)).filter((x): x is number => x !== undefined);
    if (earlier.some((p) => p !== containerPort)) throw invalid('portMappings', m, `host port ${protocol}/${hostPort} is mapped twice`);
    for (const k of keys) seen.set(k, containerPort);
    if (earlier.length === keys.length) continue;
    out.push({ protocol, hostPort, containerPort, hostIP, hostFamily });
  }
  return out;
}

function normalize(s: ContainerFirewall): NormalizedSpec & { net: ReturnType<typeof normalizeNetwork>; localhostPorts: boolean } {
  const net = normalizeNetwork(s);
  if (!Array.isArray(s.ips)) throw invalid('ips', s.ips, 'must be a list of addresses');
  const ips = s.ips.map((text) => {
    const p = ipPrefix(text);
    if (!p) throw invalid('ips[]', text, 'must be an address with its prefix length, like 10.88.0.2/16', ERR.INVALID_ADDRESS);
    return p;
  });
  let spoof: NormalizedSpec['spoof'];
  if (s.spoofCheck) {
    let mac: string;
    try {
      mac = parseUnicastMac(s.mac, 'mac');
    } catch {
      throw invalid('mac', s.mac, 'spoofCheck needs the unicast MAC of the container interface', ERR.INVALID_MAC);
    }
    spoof = { hostVeth: checkIfname('hostVeth', s.hostVeth), mac };
  }
  return {
    containerId: checkName('containerId', s.containerId),
    ifname: checkName('ifname', s.ifname, 64),
    network: net.network,
    bridge: net.bridge,
    ips,
    masquerade: s.masquerade ?? false,
    portMappings: normalizeMappings(s.portMappings ?? []),
    spoof,
    iccPort: net.icc ? undefined : checkIfname('hostVeth', s.hostVeth),
    net,
    localhostPorts: s.localhostPorts ?? true,
  };
}

function tagOfRef(r: AttachmentRef): string {
  return attachmentTag(checkName('network', r.network), checkName('ifname', r.ifname, 64), checkName('containerId', r.containerId));
}

// ── transactions ──────────────────────────────────────────────────────────────────────────────────────

/** Errors a concurrent writer can cause; anything else is final. */
function isRace(e: unknown): boolean {
  return e instanceof FirewallError && ['EEXIST', 'ENOENT', 'EBUSY', 'EINTR', 'EAGAIN', 'ENOBUFS'].includes(e.code);
}

/**
 * Read, build, apply; on a race, read again (bounded). `build` returns null when there is nothing to do.
 */
async function readModifyWrite(
  b: NftBackend,
  netns: string | undefined,
  what: string,
  build: (st: Observed) => NftCommand[] | null,
  attempts = MAX_ATTEMPTS,
  read: (b: NftBackend, netns: string | undefined) => Promise<Observed> = readState,
  commit: (cmds: NftCommand[]) => Promise<void> = (cmds) => b.apply(cmds, netns),
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const st = await read(b, netns);
    const cmds = build(st);
    if (cmds === null || cmds.length === 0) return;
    try {
      await commit(cmds);
      return;
    } catch (e) {
      if (!isRace(e) || attempt >= attempts) throw withContext(what, e);
      await new Promise((r) => setTimeout(r, attempt * 3 + Math.random() * 5));
    }
  }
}

function withContext(what: string, e: unknown): unknown {
  if (!(e instanceof FirewallError)) return e;
  return new FirewallError(`${what}: ${e.message}`, { code: e.code, op: e.op, object: e.object, nftError: e.nftError, cause: e });
}

/** Compare-and-delete of an element as read: fails the transaction if it changed since. */
function deleteObservedElement(e: ObservedElement): NftCommand[] {
  const family = MAPS[e.map].family;
  return [cmd.addMapElement(e.map, e.key, e.chain), cmd.deleteElement(family, e.map, e.key)];
}

function deleteAttachmentCommands(elements: ObservedElement[], chains: { family: 'inet' | 'bridge'; name: string }[]): NftCommand[] {
  return [...elements.flatMap(deleteObservedElement), ...chains.map((c) => cmd.deleteChain(c.family, c.name))];
}

function describeOwner(st: Observed, chain: string): string {
  for (const c of st.chains.values()) {
    if (c.name !== chain) continue;
    const info = parseRuleComment(c.rules[0]?.comment);
    if (info?.containerId) return `container ${info.containerId} (interface ${info.ifname}, network ${info.network})`;
  }
  return `another attachment (${chain})`;
}

function describeKey(map: MapName, key: unknown): string {
  const k = (key as { concat?: unknown[] }).concat;
  if (k && PORT_MAPS.includes(map)) {
    const [where, proto, port] = k as [string, string, number];
    return map === 'ports' ? `${proto}/${port} (every ${where} address)` : `${proto}/${port} on ${where}`;
  }
  return `${map} ${String(key)}`;
}

function reconcile(st: Observed, d: DesiredState, prefix: NftCommand[]): NftCommand[] {
  const out = [...prefix];
  const ours = st.elements.filter((e) => parseContainerChain(e.chain)?.tag === d.tag);
  const wanted = new Set(d.elements.map((e) => `${e.map} ${e.keyId}`));
  for (const e of ours) if (!wanted.has(`${e.map} ${e.keyId}`)) out.push(...deleteObservedElement(e));
  for (const e of d.elements) {
    const held = st.elements.find((o) => o.map === e.map && o.keyId === e.keyId);
    if (!held || held.chain === e.chain) continue;
    if (PORT_MAPS.includes(e.map)) {
      throw new FirewallError(`host port ${describeKey(e.map, e.key)} is already published by ${describeOwner(st, held.chain)}`, {
        code: ERR.HOST_PORT_IN_USE,
        op: 'publish port',
        object: describeKey(e.map, e.key),
      });
    }
    // An address or veth name now belongs to this attachment (the IPAM or the kernel says so): the old
    // owner's dispatch entry is stale.
    out.push(...deleteObservedElement(held));
  }
  const desiredChains = new Set(d.chains.map((c) => chainKey(c.family, c.name)));
  for (const c of st.chains.values()) {
    if (parseContainerChain(c.name)?.tag === d.tag && !desiredChains.has(chainKey(c.family, c.name))) out.push(cmd.deleteChain(c.family, c.name));
  }
  for (const c of d.chains) out.push(cmd.addChain(c.family, c.name), cmd.flushChain(c.family, c.name), ...chainRules(c));
  for (const e of d.elements) out.push(cmd.addMapElement(e.map, e.key, e.chain));
  // Records of a family the attachment no longer has (or of a bridge now icc: true) go with what they name.
  const stale = ownRecords(st, d.tag).filter((r) => !d.records.includes(r));
  out.push(...deleteRecorded(st, d.tag, stale));
  out.push(...d.records.flatMap(addRecord));
  return out;
}

/** Creates a record if missing, with a marker (generation 0) so that a DEL has something to compare from the start. */
function addRecord(name: string): NftCommand[] {
  const { family } = parsePolicyRecord(name)!;
  return [cmd.addSet('inet', name, POLICY_SETS[family === 4 ? 'allow4' : 'allow6'].type), cmd.addSetElement('inet', name, recordMarker(family, 0))];
}

/** The names of the policy records of `tag` that the state read holds. */
function ownRecords(st: Observed, tag: string): string[] {
  return ([4, 6] as const).map((f) => policyRecord(tag, f)).filter((n) => st.setKeys.has(chainKey('inet', n)));
}

/**
 * Deletes the records named (all of attachment `tag`) and every element they list, with the neighbour elements
 * each stands for and its entry in the record of the other attachment it names, each idempotently (an element
 * another DEL took already is no error; a record deleted meanwhile fails the transaction, which is retried).
 * An element a record lists named the attachment when it was written, so everything deleted named it.
 * `going`: the tags deleted in the same transaction (a GC's), whose records are not partners to write.
 */
function deleteRecorded(st: Observed, tag: string, records: readonly string[], going: ReadonlySet<string> = new Set([tag])): NftCommand[] {
  const owners = addressOwners(st);
  const icc = new Set(st.elements.filter((e) => e.map === 'icc_ports').map((e) => parseContainerChain(e.chain)?.tag));
  const policy = new Map<string, PolicyElement>();
  const partners = new Map<string, { record: string; key: unknown }>();
  const markers: NftCommand[] = [];
  for (const name of records) {
    const { family } = parsePolicyRecord(name)!;
    for (const key of st.setKeys.get(chainKey('inet', name)) ?? []) {
      // a plain delete of the marker read: fails (and the DEL reads again) if a policy change wrote the record since
      if (isRecordMarker(key)) {
        markers.push(cmd.deleteElement('inet', name, key));
        continue;
      }
      for (const e of elementsOfAllowKey(family, key)) policy.set(`${e.set} ${JSON.stringify(e.key)}`, e);
      for (const address of ((key as { concat?: unknown[] }).concat ?? []).slice(1, 3)) {
        const other = owners.get(String(address));
        if (other === undefined || going.has(other) || !icc.has(other)) continue;
        const record = policyRecord(other, family);
        partners.set(`${record} ${JSON.stringify(key)}`, { record, key });
      }
    }
  }
  return [
    ...[...policy.values()].flatMap(deletePolicyElement),
    ...[...partners.values()].flatMap((p) => [cmd.addSetElement('inet', p.record, p.key), cmd.deleteElement('inet', p.record, p.key)]),
    ...markers,
    ...records.map((n) => cmd.deleteSet('inet', n)),
  ];
}

function coversLoopback(m: NormalizedMapping): boolean {
  return m.hostIP === undefined ? m.hostFamily !== 6 : m.hostIP.startsWith('127.');
}

// ── public operations ─────────────────────────────────────────────────────────────────────────────────

/**
 * Creates netplumb's tables if needed and registers `bridge` with its isolation settings. Idempotent; one
 * transaction. (addContainerRules does the same within its own transaction.)
 */
export async function ensureNetworkFirewall(net: NetworkFirewall, opts: FirewallOptions = {}): Promise<void> {
  const n = normalizeNetwork(net);
  const b = nftBackend(opts.backend);
  await b.apply([...skeleton(), ...bridgeCommands(n)], opts.netns);
}

/**
 * Installs one attachment's rules — masquerade, hairpin, published ports, spoof check — and (re)applies its
 * bridge's isolation, in one transaction. Repeating it replaces the attachment's previous rules (no
 * duplicates). Throws FirewallError `ERR_HOST_PORT_IN_USE` when a host port is published by another attachment.
 */
export async function addContainerRules(spec: ContainerFirewall, opts: FirewallOptions = {}): Promise<void> {
  const s = normalize(spec);
  const d = desiredState(s);
  const b = nftBackend(opts.backend);
  if (s.localhostPorts && s.portMappings.some(coversLoopback) && s.ips.some((p) => p.family === 4)) {
    writeSysctl(`net/ipv4/conf/${s.bridge}/route_localnet`, '1', opts.netns);
  }
  const prefix = [...skeleton(), ...bridgeCommands(s.net)];
  const own = [
    ...d.chains.flatMap((c) => [cmd.createChain(c.family, c.name), ...chainRules(c)]),
    ...d.elements.map((e) => cmd.addMapElement(e.map, e.key, e.chain)),
    ...d.records.flatMap(addRecord),
  ];
  const what = `firewall ADD ${s.containerId}/${s.ifname}`;
  try {
    if (opts.netns !== undefined || !commitOwnRules(b, s.net, prefix, own)) await b.apply([...prefix, ...own], opts.netns);
    return;
  } catch (e) {
    if (!isRace(e)) throw withContext(what, e);
  }
  await readModifyWrite(b, opts.netns, what, (st) => reconcile(st, d, prefix));
}

/**
 * An ADD's first transaction in the own namespace, tracked (tracked.ts): without the skeleton and the bridge's
 * registration when this process's own commits left both intact, else with them. A transaction without them
 * that fails for any reason is sent again with them, so that what fails, and how, is what always failed.
 * False when the backend cannot track (the caller sends everything).
 */
function commitOwnRules(b: NftBackend, net: NetworkFirewall & { bridge: string }, prefix: NftCommand[], own: NftCommand[]): boolean {
  const registration = { bridge: net.bridge, key: JSON.stringify(net) };
  const full = (): TrackedCommands => ({ commands: [...prefix, ...own], registers: registration });
  let skipped = false;
  try {
    return commitTracked(b, (known) => {
      skipped = known.registered(registration);
      return skipped ? { commands: own } : full();
    });
  } catch (e) {
    if (!skipped) throw e;
  }
  return commitTracked(b, full);
}

/**
 * Removes everything of one attachment, found by container ID, interface and network alone (no address,
 * no namespace needed). Idempotent: returns false when there was nothing to remove.
 */
export async function removeContainerRules(ref: AttachmentRef, opts: FirewallOptions = {}): Promise<boolean> {
  return removeTag(nftBackend(opts.backend), opts.netns, tagOfRef(ref), `firewall DEL ${ref.containerId}/${ref.ifname}`);
}

async function removeTag(b: NftBackend, netns: string | undefined, tag: string, what: string): Promise<boolean> {
  let removed = false;
  const build = (st: Observed) => {
    const mine = byTag(st).get(tag);
    removed = mine !== undefined;
    return mine ? deleteAttachment(st, tag, mine) : null;
  };
  // Only this attachment's chains, the maps and its own policy records are read: a DEL costs the same with 0
  // or 300 neighbours, and with 0 or 1000 allow rules that do not name it. Its transaction leaves the skeleton
  // and the bridges' registrations as they were (tracked.ts): the next ADD may still leave them out.
  const commit = (cmds: NftCommand[]) => (netns === undefined && commitTracked(b, () => ({ commands: cmds })) ? Promise.resolve() : b.apply(cmds, netns));
  await readModifyWrite(b, netns, what, build, MAX_ATTEMPTS, (b2, ns) => readAttachmentState(b2, ns, tag), commit);
  return removed;
}

/**
 * Everything of one attachment as read — its elements, its chains — and the allow elements its policy records
 * list (every element that names its addresses): a later owner of an address inherits nothing.
 */
function deleteAttachment(
  st: Observed,
  tag: string,
  mine: { elements: ObservedElement[]; chains: { family: 'inet' | 'bridge'; name: string }[] },
  going: ReadonlySet<string> = new Set([tag]),
): NftCommand[] {
  return [...deleteAttachmentCommands(mine.elements, mine.chains), ...deleteRecorded(st, tag, ownRecords(st, tag), going)];
}

function observedPolicy(st: Observed, pick: (set: PolicySetName, key: unknown) => boolean): { set: PolicySetName; key: unknown }[] {
  return POLICY_SET_NAMES.flatMap((set) =>
    (st.setKeys.get(chainKey(POLICY_SETS[set].family, set)) ?? []).filter((k) => pick(set, k)).map((key) => ({ set, key })),
  );
}

/** Idempotent delete of a set element: the `add` makes sure it is there, so a concurrent deletion is no error. */
function deletePolicyElement(e: { set: PolicySetName; key: unknown }): NftCommand[] {
  const family = POLICY_SETS[e.set].family;
  return [cmd.addSetElement(family, e.set, e.key), cmd.deleteElement(family, e.set, e.key)];
}

/** The attachment tag whose masq4/masq6 element holds each address (every attachment has one per address). */
function addressOwners(st: Observed): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of st.elements) {
    const tag = parseContainerChain(e.chain)?.tag;
    if ((e.map === 'masq4' || e.map === 'masq6') && tag !== undefined) out.set(String(e.key), tag);
  }
  return out;
}

/**
 * The record commands that make every record hold exactly the allow elements of `bridge` in `want` that name
 * its attachment. Throws ERR_NOT_FOUND for an address no attachment on an icc: false bridge holds: its
 * elements would have no record, so no DEL would ever remove them.
 */
function recordCommands(st: Observed, bridge: string, want: readonly PolicyElement[]): NftCommand[] {
  const owners = addressOwners(st);
  const wanted = new Map<string, Map<string, PolicyElement['key']>>();
  for (const e of want) {
    if (e.set !== 'allow4' && e.set !== 'allow6') continue;
    const family = e.set === 'allow4' ? 4 : 6;
    for (const address of e.key.concat.slice(1, 3) as string[]) {
      const tag = owners.get(address);
      const record = tag === undefined ? undefined : policyRecord(tag, family);
      if (record === undefined || !st.setKeys.has(chainKey('inet', record))) {
        throw new FirewallError(`allow rule: no container on an icc: false network holds ${address} (rules name attached containers only)`, {
          code: ERR.NOT_FOUND,
          op: 'policy',
          object: address,
        });
      }
      let m = wanted.get(record);
      if (!m) wanted.set(record, (m = new Map()));
      m.set(JSON.stringify(e.key), e.key);
    }
  }
  const out: NftCommand[] = [];
  for (const [id, keys] of st.setKeys) {
    const name = id.slice('inet '.length);
    if (!id.startsWith('inet ') || parsePolicyRecord(name) === undefined) continue;
    const want = wanted.get(name) ?? new Map();
    const have = new Set<string>();
    const changes: NftCommand[] = [];
    for (const key of keys) {
      const k = (key as { concat?: unknown[] }).concat;
      if (k?.[0] !== bridge || isRecordMarker(key)) continue;
      have.add(JSON.stringify(key));
      if (!want.has(JSON.stringify(key))) changes.push(cmd.deleteElement('inet', name, key));
    }
    for (const [k, key] of want) if (!have.has(k)) changes.push(cmd.addSetElement('inet', name, key));
    if (changes.length === 0) continue;
    // A new generation; plain deletes of the old: they fail (and the transaction is retried) if a DEL took the
    // record, or another policy change wrote it, since it was read.
    const { family } = parsePolicyRecord(name)!;
    const old = keys.filter(isRecordMarker);
    const used = new Set(old.map((m) => (m as { concat: unknown[] }).concat[4]));
    let generation = 1 + Math.floor(Math.random() * 65535);
    while (used.has(generation)) generation = (generation % 65535) + 1;
    out.push(...changes, ...old.map((m) => cmd.deleteElement('inet', name, m)), cmd.addSetElement('inet', name, recordMarker(family, generation)));
  }
  return out;
}

/**
 * Replaces every allow rule of `bridge` (an `icc: false` network) with `rules`, in one transaction: the
 * elements of its old rules go, the new ones come, and the policy record of every attachment named lists
 * exactly the elements naming it (what its DEL removes). Throws `ERR_INVALID_ARG_VALUE`/`ERR_INVALID_ADDRESS`
 * (nothing changed) for a bad port, protocol or address, overlapping rules, or a rule set too large, and
 * `ERR_NOT_FOUND` for an address no attachment on an icc: false bridge holds.
 * Returns the number of allow elements now installed for the bridge.
 */
export async function setAllowRules(bridge: string, rules: readonly AllowRule[], opts: FirewallOptions = {}): Promise<number> {
  checkIfname('bridge', bridge);
  const want = policyElements(bridge, rules);
  const wantPairs = new Set(want.filter((e) => e.set === 'peers4').map((e) => JSON.stringify(e.key.concat)));
  const b = nftBackend(opts.backend);
  await readModifyWrite(b, opts.netns, `firewall policy ${bridge}`, (st) => {
    const records = recordCommands(st, bridge, want);
    const old = observedPolicy(st, (set, key) => elementOfBridge(set, key, bridge));
    // peers4 has no bridge in its key: the old pairs are those of the bridge's old allow4 elements.
    const oldPairs = new Set<string>();
    for (const e of old) {
      const k = (e.key as { concat: unknown[] }).concat;
      if (e.set === 'allow4') oldPairs.add(JSON.stringify([k[1], k[2]])).add(JSON.stringify([k[2], k[1]]));
    }
    const stalePairs = [...oldPairs].filter((p) => !wantPairs.has(p)).map((p) => ({ set: 'peers4' as const, key: { concat: JSON.parse(p) } }));
    const existing = new Set(old.map((e) => `${e.set} ${JSON.stringify(e.key)}`));
    const wanted = new Set(want.map((e) => `${e.set} ${JSON.stringify(e.key)}`));
    return [
      ...skeleton(),
      ...old.filter((e) => !wanted.has(`${e.set} ${JSON.stringify(e.key)}`)).flatMap(deletePolicyElement),
      ...stalePairs.flatMap(deletePolicyElement),
      ...want.filter((e) => !existing.has(`${e.set} ${JSON.stringify(e.key)}`)).map((e) => cmd.addSetElement(POLICY_SETS[e.set].family, e.set, e.key)),
      ...records,
    ];
  });
  return want.filter((e) => e.set === 'allow4' || e.set === 'allow6').length;
}

/** The allow elements installed for `bridge`, as `from → to proto/port` lines (what `nft -j` lists). */
export async function listAllowElements(bridge: string, opts: FirewallOptions = {}): Promise<string[]> {
  const st = await readState(nftBackend(opts.backend), opts.netns);
  return observedPolicy(st, (set, key) => (set === 'allow4' || set === 'allow6') && elementOfBridge(set, key, bridge)).map((e) => {
    const [, from, to, proto, port] = (e.key as { concat: unknown[] }).concat;
    return `${from} → ${to} ${proto}/${port}`;
  });
}

/** Every attachment that has state in the tables. */
export async function listContainerRules(opts: FirewallOptions = {}): Promise<FirewallAttachment[]> {
  const st = await readState(nftBackend(opts.backend), opts.netns);
  return [...byTag(st)].map(([tag, { chains, elements }]) => describe(tag, chains, elements));
}

function describe(tag: string, chains: { name: string; rules: { comment: string | undefined }[] }[], elements: ObservedElement[]): FirewallAttachment {
  const info = chains.map((c) => parseRuleComment(c.rules[0]?.comment)).find((i) => i?.containerId !== undefined);
  const ports: FirewallAttachment['ports'] = [];
  const addresses: string[] = [];
  let hostVeth: string | undefined;
  for (const e of elements) {
    if (e.map === 'masq4' || e.map === 'masq6') addresses.push(String(e.key));
    else if (e.map === 'spoof') hostVeth = String(e.key);
    else if (PORT_MAPS.includes(e.map)) {
      const [where, protocol, hostPort] = (e.key as { concat: [string, string, number] }).concat;
      if (e.map === 'ports') ports.push({ protocol, hostPort, hostIP: undefined, family: where === 'ipv4' ? 4 : 6 });
      else ports.push({ protocol, hostPort, hostIP: where, family: e.map === 'hostports4' ? 4 : 6 });
    }
  }
  return {
    tag,
    containerId: info?.containerId,
    ifname: info?.ifname,
    network: info?.network,
    chains: chains.map((c) => c.name).sort(),
    addresses,
    ports,
    hostVeth,
  };
}

/**
 * CNI CHECK: compares the attachment's rules with what `spec` asks for. Returns the differences found
 * (empty when in order): missing or changed chains, missing, foreign or stale map entries, bridge not set up.
 */
export async function checkContainerRules(spec: ContainerFirewall, opts: FirewallOptions = {}): Promise<string[]> {
  const s = normalize(spec);
  const d = desiredState(s);
  const st = await readState(nftBackend(opts.backend), opts.netns);
  const problems: string[] = [];
  if (!st.tables.has('inet') || !st.tables.has('bridge')) problems.push(`table netplumb missing (have: ${[...st.tables].join(', ') || 'none'})`);
  if (!st.sets.get(chainKey('inet', 'bridges'))?.has(s.bridge)) problems.push(`bridge ${s.bridge} is not registered in set bridges`);
  for (const dir of ['from', 'to'] as const) {
    const el = st.elements.find((e) => e.map === `isolation_${dir}` && e.key === s.bridge);
    if (el?.chain !== bridgeChain(s.bridge, dir)) problems.push(`isolation_${dir} has no entry for bridge ${s.bridge}`);
  }
  const icc = st.elements.find((e) => e.map === 'icc' && bridgeOfElement(e) === s.bridge);
  if (icc?.chain !== bridgeChain(s.bridge, 'icc')) problems.push(`icc has no entry for bridge ${s.bridge}`);
  const iccRules = st.chains.get(chainKey('inet', bridgeChain(s.bridge, 'icc')))?.rules.length ?? 0;
  if (iccRules > 0 === s.net.icc) problems.push(`bridge ${s.bridge} has ${iccRules} icc rules, configured icc ${s.net.icc}`);
  for (const c of d.chains) {
    const have = st.chains.get(chainKey(c.family, c.name));
    if (!have) {
      problems.push(`chain ${c.family} ${c.name} (${c.kind}) missing`);
      continue;
    }
    const stale = have.rules.length !== c.rules.length || have.rules.some((r) => parseRuleComment(r.comment)?.digest !== c.digest);
    if (stale)
      problems.push(
        `chain ${c.family} ${c.name} (${c.kind}) has ${have.rules.length} rules not matching the configuration (want ${c.rules.length}, digest ${c.digest})`,
      );
  }
  const mine = byTag(st).get(d.tag);
  for (const c of mine?.chains ?? []) {
    if (!d.chains.some((x) => x.name === c.name)) problems.push(`unexpected chain ${c.family} ${c.name}`);
  }
  for (const e of d.elements) {
    const held = st.elements.find((o) => o.map === e.map && o.keyId === e.keyId);
    if (!held) problems.push(`${describeKey(e.map, e.key)} missing from map ${e.map}`);
    else if (held.chain !== e.chain) problems.push(`${describeKey(e.map, e.key)} in map ${e.map} belongs to ${describeOwner(st, held.chain)}`);
  }
  for (const e of mine?.elements ?? []) {
    if (!d.elements.some((x) => x.map === e.map && x.keyId === e.keyId)) problems.push(`stale ${describeKey(e.map, e.key)} in map ${e.map}`);
  }
  for (const r of d.records)
    if (!st.setKeys.has(chainKey('inet', r))) problems.push(`policy record ${r} missing (allow rules naming the container would outlive it)`);
  return problems;
}

/**
 * CNI GC: removes every attachment of `network` that is not in `valid`, in one transaction (or, when
 * concurrent DELs keep invalidating it, one transaction per attachment). Returns what was removed.
 */
export async function gcFirewall(
  network: string,
  valid: readonly { containerId: string; ifname: string }[],
  opts: FirewallOptions = {},
): Promise<FirewallAttachment[]> {
  const keep = new Set(valid.map((v) => tagOfRef({ ...v, network })));
  const netPrefix = `${networkHash(checkName('network', network))}-`;
  const b = nftBackend(opts.backend);
  const staleOf = (st: Observed) => [...byTag(st)].filter(([tag]) => tag.startsWith(netPrefix) && !keep.has(tag));
  let removed: FirewallAttachment[] = [];
  try {
    await readModifyWrite(
      b,
      opts.netns,
      `firewall GC ${network}`,
      (st) => {
        const stale = staleOf(st);
        removed = stale.map(([tag, { chains, elements }]) => describe(tag, chains, elements));
        const going = new Set(stale.map(([tag]) => tag));
        return stale.flatMap(([tag, mine]) => deleteAttachment(st, tag, mine, going));
      },
      3,
    );
    return removed;
  } catch (e) {
    if (!isRace(e)) throw e;
  }
  // Concurrent DELs keep changing what a whole-network sweep would delete: go one attachment at a time.
  const stale = staleOf(await readState(b, opts.netns));
  removed = stale.map(([tag, { chains, elements }]) => describe(tag, chains, elements));
  for (const [tag] of stale) await removeTag(b, opts.netns, tag, `firewall GC ${network}`);
  return removed;
}

/** The bridge a per-bridge element (isolation, icc) belongs to, or undefined for any other element. */
function bridgeOfElement(e: ObservedElement): string | undefined {
  if ((e.map === 'isolation_from' || e.map === 'isolation_to') && typeof e.key === 'string') return e.key;
  const k = (e.key as { concat?: unknown[] } | null)?.concat;
  return e.map === 'icc' && typeof k?.[0] === 'string' ? k[0] : undefined;
}

/** The commands that forget `bridge`: its isolation chains, its elements in the isolation maps, its entry in set bridges. */
function forgetBridge(st: Observed, bridge: string): NftCommand[] {
  const out: NftCommand[] = [];
  if (st.sets.get(chainKey('inet', 'bridges'))?.has(bridge))
    out.push(cmd.addSetElement('inet', 'bridges', bridge), cmd.deleteElement('inet', 'bridges', bridge));
  for (const e of st.elements) if (bridgeOfElement(e) === bridge) out.push(...deleteObservedElement(e));
  for (const dir of ['from', 'to', 'icc'] as const) {
    const name = bridgeChain(bridge, dir);
    if (st.chains.has(chainKey('inet', name))) out.push(cmd.deleteChain('inet', name));
  }
  return out;
}

/** Forgets a bridge: its isolation chains and its entry in the bridges set (its containers' rules stay). */
export async function removeNetworkFirewall(bridge: string, opts: FirewallOptions = {}): Promise<void> {
  checkIfname('bridge', bridge);
  const b = nftBackend(opts.backend);
  await readModifyWrite(b, opts.netns, `firewall remove bridge ${bridge}`, (st) => (st.tables.has('inet') ? forgetBridge(st, bridge) : null));
}

/** The bridges netplumb's firewall state knows: the bridges set and the keys of the isolation maps. */
function knownBridges(st: Observed): Set<string> {
  const names = new Set(st.sets.get(chainKey('inet', 'bridges')) ?? []);
  for (const e of st.elements) {
    const b = bridgeOfElement(e);
    if (b !== undefined) names.add(b);
  }
  return names;
}

/**
 * GC of bridges: forgets every bridge netplumb's state knows that `existing()` (called after the state was
 * read) does not list — bridges deleted since, whose isolation chains and elements would stay for ever.
 * A bridge that ADD is creating is safe: ADD makes the link before it registers the bridge. Returns the
 * bridges forgotten.
 */
export async function gcBridgeFirewall(existing: () => Promise<ReadonlySet<string>>, opts: FirewallOptions = {}): Promise<string[]> {
  const b = nftBackend(opts.backend);
  const before = await readState(b, opts.netns);
  if (!before.tables.has('inet')) return [];
  const links = await existing();
  const gone = [...knownBridges(before)].filter((n) => !links.has(n));
  if (gone.length === 0) return [];
  await readModifyWrite(b, opts.netns, `firewall GC bridges ${gone.join(' ')}`, (st) =>
    st.tables.has('inet') ? gone.flatMap((n) => forgetBridge(st, n)) : null,
  );
  return gone;
}

/** Deletes netplumb's tables altogether (every container's rules with them). */
export async function deleteFirewall(opts: FirewallOptions = {}): Promise<void> {
  const b = nftBackend(opts.backend);
  await readModifyWrite(b, opts.netns, 'firewall delete tables', (st) => [...st.tables].map((f) => cmd.deleteTable(f)));
}
