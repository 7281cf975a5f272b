/**
 * host-local's operations over the store, each under one flock: allocate (round robin per range set,
 * requested addresses, all or nothing), release by attachment (idempotent), lookup, garbage collection
 * against the attachments that are still valid, and a status count of free addresses.
 * See docs/CNI.md for the rest.
 */
import { accessSync, constants as FS } from 'node:fs';
import { dirname } from 'node:path';
import { IpamError } from './errors.js';
import { formatIp, type Ip } from '../addr/ip.js';
import { isValidContainerId, ifnameProblem } from '../names.js';
import { candidates, ipOf, rangeFor, rangeSetSize, rangeSetText, type Range } from './range.js';
import type { IpamConfig } from './config.js';
import { fsStep, isProblem, ownedBy, Store, type LockOptions, type Owner, type StoreTx } from './store.js';

/** One container interface on one network: the store's key (with the network name). */
export interface Attachment {
  containerId: string;
  ifname: string;
}

export interface AllocatedIp {
  /** index of the range set the address came from */
  rangeSet: number;
  address: Ip;
  prefix: number;
  gateway: Ip;
  /** `address/prefix` */
  cidr: string;
  /** true if the attachment already held this address (a repeated ADD) */
  existing: boolean;
}

/** Where a network's store is: enough for release, lookup and GC, which need no ranges. */
export interface StoreRef {
  dataDir: string;
  name: string;
}

function checkAttachment(a: Attachment, op: string): void {
  if (!isValidContainerId(a.containerId)) {
    throw new IpamError('ERR_IPAM_CONFIG', `invalid container ID ${JSON.stringify(a.containerId)}`, op, a.containerId);
  }
  const p = ifnameProblem(a.ifname);
  if (p !== undefined) throw new IpamError('ERR_IPAM_CONFIG', `interface name ${JSON.stringify(a.ifname)} ${p}`, op, a.ifname);
}

function allocated(set: number, r: Range, ip: Ip, existing: boolean): AllocatedIp {
  return {
    rangeSet: set,
    address: ip,
    prefix: r.subnet.prefix,
    gateway: ipOf(r.family, r.gateway),
    cidr: `${formatIp(ip)}/${r.subnet.prefix}`,
    existing,
  };
}

/**
 * A requested address in no range set, or the gateway of its range, can never be granted: refused before
 * the store is created or locked, so such an ADD leaves no trace at all (the same errors as under the lock).
 */
function refuseImpossibleRequests(conf: IpamConfig): void {
  for (const ip of conf.requestedIps) {
    const text = formatIp(ip);
    const idx = conf.rangeSets.findIndex((set) => rangeFor(set, ip) !== undefined);
    if (idx === -1) {
      throw new IpamError(
        'ERR_IPAM_UNAVAILABLE',
        `failed to allocate all requested IPs: ${text} (in no range set of network "${conf.name}")`,
        'allocate',
        text,
      );
    }
    const set = conf.rangeSets[idx]!;
    if (ip.value === rangeFor(set, ip)!.gateway) {
      throw new IpamError(
        'ERR_IPAM_UNAVAILABLE',
        `requested address ${text} is the gateway of range set ${idx} (${rangeSetText(set)}) of network "${conf.name}"`,
        'allocate',
        text,
      );
    }
  }
}

/**
 * Allocates one address from every range set of `conf` for the attachment, in one critical section.
 * A requested address (conf.requestedIps) is taken from the range set that contains it; every requested
 * address must be satisfied. On any failure, the addresses this call reserved are released again.
 *
 * Unlike host-local, a repeated ADD for an attachment that already holds an address in a range set gets
 * that address back instead of "duplicate allocation is not allowed" (plugins#327); it is an error only
 * when a different address is requested.
 */
export async function allocate(conf: IpamConfig, att: Attachment, opts: LockOptions = {}): Promise<AllocatedIp[]> {
  checkAttachment(att, 'allocate');
  refuseImpossibleRequests(conf);
  const store = Store.open(conf.dataDir, conf.name);
  return store.locked((tx) => {
    const listing = tx.list();
    tx.removeStaleTemps(listing);
    const taken = tx.reservations(listing);
    const held: Ip[] = [];
    for (const e of taken.values()) {
      const o = tx.owner(e.name);
      if (!isProblem(o) && ownedBy(o, att.containerId, att.ifname, false)) held.push(e.ip);
    }
    const requested = new Map(conf.requestedIps.map((ip) => [formatIp(ip), ip]));
    const made: string[] = [];
    // Written only once everything succeeded: a failed ADD leaves no trace, not even in the round robin.
    const lastReserved = new Map<number, Ip>();
    const who = `${att.containerId}/${att.ifname}`;
    try {
      const out: AllocatedIp[] = [];
      conf.rangeSets.forEach((set, idx) => {
        const setText = `range set ${idx} (${rangeSetText(set)}) of network "${conf.name}"`;
        let req: Ip | undefined;
        for (const [k, ip] of requested) {
          if (rangeFor(set, ip)) {
            req = ip;
            requested.delete(k);
            break;
          }
        }
        const mine = held.filter((ip) => rangeFor(set, ip) !== undefined);
        if (mine.length > 0) {
          const m = req === undefined ? mine[0]! : mine.find((ip) => ip.value === req!.value);
          if (m === undefined) {
            throw new IpamError(
              'ERR_IPAM_DUPLICATE',
              `${who} already holds ${formatIp(mine[0]!)} in ${setText}; it cannot also get ${formatIp(req!)}`,
              'allocate',
              formatIp(req!),
            );
          }
          out.push(allocated(idx, rangeFor(set, m)!, m, true));
          return;
        }
        if (req !== undefined) {
          const r = rangeFor(set, req)!;
          const text = formatIp(req);
          if (req.value === r.gateway) {
            throw new IpamError('ERR_IPAM_UNAVAILABLE', `requested address ${text} is the gateway of ${setText}`, 'allocate', text);
          }
          if (!tx.reserve(req, att.containerId, att.ifname)) {
            throw new IpamError('ERR_IPAM_UNAVAILABLE', `requested address ${text} is already allocated in ${setText}`, 'allocate', text);
          }
          made.push(text);
          lastReserved.set(idx, req);
          out.push(allocated(idx, r, req, false));
          return;
        }
        let used = 0n;
        for (const e of taken.values()) {
          const r = rangeFor(set, e.ip);
          if (r !== undefined && e.ip.value !== r.gateway) used++;
        }
        const size = rangeSetSize(set);
        if (used < size) {
          for (const c of candidates(set, tx.lastReserved(idx))) {
            const ip = ipOf(c.range.family, c.value);
            const text = formatIp(ip);
            if (taken.has(text)) continue;
            // A name not in the listing but present now was made by someone ignoring the lock: skip it.
            if (!tx.reserve(ip, att.containerId, att.ifname)) continue;
            made.push(text);
            lastReserved.set(idx, ip);
            out.push(allocated(idx, c.range, ip, false));
            return;
          }
        }
        throw new IpamError('ERR_IPAM_EXHAUSTED', `no free address in ${setText}: all ${size} addresses are allocated`, 'allocate', conf.name);
      });
      if (requested.size > 0) {
        const list = [...requested.keys()].join(' ');
        throw new IpamError(
          'ERR_IPAM_UNAVAILABLE',
          `failed to allocate all requested IPs: ${list} (in no range set of network "${conf.name}")`,
          'allocate',
          list,
        );
      }
      for (const [idx, ip] of lastReserved) tx.setLastReserved(idx, ip);
      return out;
    } catch (e) {
      for (const name of made) tx.remove(name);
      throw e;
    }
  }, opts);
}

/** The addresses (canonical text) held by the attachment; legacy files (ID only) count when nothing else does. */
function heldBy(tx: StoreTx, att: Attachment): { exact: string[]; legacy: string[] } {
  const exact: string[] = [];
  const legacy: string[] = [];
  for (const e of tx.reservations().values()) {
    const o = tx.owner(e.name);
    if (isProblem(o) || !ownedBy(o, att.containerId, att.ifname, true)) continue;
    (o.ifname === undefined ? legacy : exact).push(e.name);
  }
  return { exact, legacy };
}

/**
 * Releases every address the attachment holds in the network (host-local: exact matches, else files in
 * the legacy ID-only format). Idempotent: a missing store or nothing held is success. Returns the names
 * of the files removed.
 */
export async function release(ref: StoreRef, att: Attachment, opts: LockOptions = {}): Promise<string[]> {
  checkAttachment(att, 'release');
  const store = Store.open(ref.dataDir, ref.name, { create: false });
  if (!store.checkDir()) return [];
  return store.locked((tx) => {
    tx.removeStaleTemps();
    const { exact, legacy } = heldBy(tx, att);
    const victims = exact.length > 0 ? exact : legacy;
    for (const name of victims) tx.remove(name);
    return victims;
  }, opts);
}

/** The addresses the attachment holds (exact matches, else legacy ones), as store file names. */
export async function lookup(ref: StoreRef, att: Attachment, opts: LockOptions = {}): Promise<string[]> {
  checkAttachment(att, 'lookup');
  const store = Store.open(ref.dataDir, ref.name, { create: false });
  if (!store.checkDir()) return [];
  return store.locked((tx) => {
    const { exact, legacy } = heldBy(tx, att);
    return exact.length > 0 ? exact : legacy;
  }, opts);
}

/**
 * The attachments holding addresses in the store, read without the lock (a snapshot for GC's callers,
 * which must name what an attachment left besides its addresses before the IPAM's GC releases them).
 * Files in the legacy format (container ID only) name no attachment and are left out.
 */
export function holders(ref: StoreRef): Attachment[] {
  const seen = new Map<string, Attachment>();
  for (const e of Store.open(ref.dataDir, ref.name, { create: false }).inspect()) {
    if (e.kind !== 'reservation' || e.owner?.ifname === undefined) continue;
    seen.set(`${e.owner.containerId}\0${e.owner.ifname}`, { containerId: e.owner.containerId, ifname: e.owner.ifname });
  }
  return [...seen.values()];
}

function isValid(owner: Owner, valid: readonly Attachment[]): boolean {
  return valid.some((a) => ownedBy(owner, a.containerId, a.ifname, true));
}

/**
 * Garbage collection (CNI 1.1 GC): releases every reservation of the network that does not belong to one
 * of the `valid` attachments — leaked ones, torn or empty files left by a crashed reference plugin,
 * planted non-files — and netplumb's stale temporary files. A legacy file (container ID only) is kept
 * when any valid attachment has that container ID. Leaves the lock and last_reserved_ip files alone.
 * Returns the names removed.
 */
export async function gc(ref: StoreRef, valid: readonly Attachment[], opts: LockOptions = {}): Promise<string[]> {
  const store = Store.open(ref.dataDir, ref.name, { create: false });
  if (!store.checkDir()) return [];
  return store.locked((tx) => {
    const listing = tx.list();
    const removed: string[] = [];
    tx.removeStaleTemps(listing);
    for (const e of tx.reservations(listing).values()) {
      const o = tx.owner(e.name);
      if (!isProblem(o) && isValid(o, valid)) continue;
      if (tx.remove(e.name)) removed.push(e.name);
    }
    return removed;
  }, opts);
}

export interface RangeSetStatus {
  rangeSet: number;
  text: string;
  size: bigint;
  used: bigint;
}

/**
 * How full each range set is. Reads under the lock when the store exists; when it does not, checks that
 * it could be created (the nearest existing ancestor of the directory is writable).
 */
export async function status(conf: IpamConfig, opts: LockOptions = {}): Promise<RangeSetStatus[]> {
  const store = Store.open(conf.dataDir, conf.name, { create: false });
  const empty = () => conf.rangeSets.map((set, i) => ({ rangeSet: i, text: rangeSetText(set), size: rangeSetSize(set), used: 0n }));
  if (!store.checkDir()) {
    let dir = conf.dataDir;
    for (let i = 0; i < 64 && dir !== '/'; i++) {
      try {
        accessSync(dir, FS.F_OK);
        break;
      } catch {
        dir = dirname(dir);
      }
    }
    fsStep('check ipam store', dir, () => accessSync(dir, FS.W_OK));
    return empty();
  }
  fsStep('check ipam store', store.dir, () => accessSync(store.dir, FS.W_OK));
  return store.locked((tx) => {
    const taken = [...tx.reservations().values()];
    return empty().map((s) => {
      const set = conf.rangeSets[s.rangeSet]!;
      let used = 0n;
      for (const e of taken) {
        const r = rangeFor(set, e.ip);
        if (r !== undefined && e.ip.value !== r.gateway) used++;
      }
      return { ...s, used };
    });
  }, opts);
}
