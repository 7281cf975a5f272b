/**
 * Ranges and range sets as host-local defines them: a range is a subnet with an allocatable window
 * [rangeStart, rangeEnd] and a gateway; a range set is a list of ranges of one family that together yield
 * one address. The iterator reproduces host-local's round robin exactly, so both allocators hand out the
 * same next address from the same store.
 * See docs/CNI.md for the rest.
 */
import { cidrContains, formatCidr, formatIp, lastOf, type Cidr, type Family, type Ip } from '../addr/ip.js';

export interface Range {
  family: Family;
  subnet: Cidr;
  rangeStart: bigint;
  rangeEnd: bigint;
  gateway: bigint;
}

export type RangeSet = Range[];

export function ipOf(family: Family, value: bigint): Ip {
  return { family, value };
}

export function subnetText(r: Pick<Range, 'family' | 'subnet'>): string {
  return formatCidr(ipOf(r.family, r.subnet.network), r.subnet.prefix);
}

/** host-local's `Range.String()`: `start-end`. */
export function rangeText(r: Range): string {
  return `${formatIp(ipOf(r.family, r.rangeStart))}-${formatIp(ipOf(r.family, r.rangeEnd))}`;
}

export function rangeSetText(set: RangeSet): string {
  return set.map(rangeText).join(',');
}

/** True if `ip` is in the subnet and inside [rangeStart, rangeEnd]. */
export function rangeContains(r: Range, ip: Ip): boolean {
  return cidrContains(r.subnet, ip) && ip.value >= r.rangeStart && ip.value <= r.rangeEnd;
}

export function rangeFor(set: RangeSet, ip: Ip): Range | undefined {
  return set.find((r) => rangeContains(r, ip));
}

/** host-local's overlap test: either range's start or end lies inside the other range. */
export function rangesOverlap(a: Range, b: Range): boolean {
  if (a.family !== b.family) return false;
  const at = (r: Range, v: bigint) => rangeContains(r, ipOf(r.family, v));
  return at(a, b.rangeStart) || at(a, b.rangeEnd) || at(b, a.rangeStart) || at(b, a.rangeEnd);
}

export function rangeSetsOverlap(a: RangeSet, b: RangeSet): boolean {
  return a.some((r) => b.some((r1) => rangesOverlap(r, r1)));
}

/** How many addresses the set can hand out (the gateway, when inside a window, is never handed out). */
export function rangeSetSize(set: RangeSet): bigint {
  let n = 0n;
  for (const r of set) {
    n += r.rangeEnd - r.rangeStart + 1n;
    if (r.gateway >= r.rangeStart && r.gateway <= r.rangeEnd) n -= 1n;
  }
  return n;
}

/** The default window of a subnet: network+1 … broadcast−1 (IPv4) or the last address (IPv6). */
export function defaultWindow(subnet: Cidr): { start: bigint; end: bigint } {
  const last = lastOf(subnet);
  return { start: subnet.network + 1n, end: subnet.family === 4 ? last - 1n : last };
}

/**
 * Candidate addresses in host-local's round-robin order: from the address after `last` (when `last` is in
 * the set) or from the first range's start, across the ranges of the set, wrapping once, skipping gateways.
 */
export function* candidates(set: RangeSet, last: Ip | undefined): Generator<{ range: Range; value: bigint }> {
  if (set.length === 0) return;
  let idx = 0;
  let cur: bigint | undefined;
  let start: bigint | undefined;
  if (last !== undefined) {
    const i = set.findIndex((r) => rangeContains(r, last));
    if (i !== -1) {
      idx = i;
      cur = last.value;
    }
  }
  let r = set[idx]!;
  if (cur === undefined) {
    cur = r.rangeStart;
    start = cur;
    if (cur !== r.gateway) yield { range: r, value: cur };
  }
  for (;;) {
    if (cur === r.rangeEnd) {
      idx = (idx + 1) % set.length;
      r = set[idx]!;
      cur = r.rangeStart;
    } else {
      cur = cur! + 1n;
    }
    if (start === undefined) start = cur;
    else if (cur === start) return;
    if (cur !== r.gateway) yield { range: r, value: cur };
  }
}
