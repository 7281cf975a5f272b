/**
 * What netplumb's tables hold right now, read with `list table … netplumb` (JSON, with handles).
 * See docs/FIREWALL.md for the rest.
 */
import { CONTAINER_MAPS, keyId, MAPS, parseContainerChain, policyRecord, TABLE, type Family, type MapName } from './layout.js';
import type { NftBackend, NftObject } from './nft.js';

export interface ObservedRule {
  handle: number;
  comment: string | undefined;
}

export interface ObservedChain {
  family: Family;
  name: string;
  rules: ObservedRule[];
}

export interface ObservedElement {
  map: MapName;
  key: unknown;
  keyId: string;
  /** the chain the element jumps to ('' for any other verdict) */
  chain: string;
}

export interface Observed {
  tables: Set<Family>;
  /** keyed `family name` */
  chains: Map<string, ObservedChain>;
  elements: ObservedElement[];
  /** named sets' elements, keyed `family name` */
  sets: Map<string, Set<string>>;
  /** the same elements as listed (concatenations stay objects), keyed `family name` */
  setKeys: Map<string, unknown[]>;
}

export const chainKey = (family: Family, name: string) => `${family} ${name}`;

/** A listed element key without the `{elem: {val, comment}}` wrapper nft adds for annotated elements. */
function unwrap(key: unknown): unknown {
  if (key !== null && typeof key === 'object' && 'elem' in key) return (key as { elem: { val: unknown } }).elem.val;
  return key;
}

function absorb(into: Observed, family: Family, objects: NftObject[]): void {
  into.tables.add(family);
  for (const o of objects) {
    if (o.chain && o.chain.table === TABLE) {
      into.chains.set(chainKey(family, o.chain.name), { family, name: o.chain.name, rules: [] });
    }
  }
  for (const o of objects) {
    if (o.rule && o.rule.table === TABLE) {
      into.chains.get(chainKey(family, o.rule.chain))?.rules.push({ handle: o.rule.handle, comment: o.rule.comment });
    } else if (o.map && o.map.table === TABLE && o.map.name in MAPS && MAPS[o.map.name as MapName].family === family) {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- `nft -j` output: untyped JSON, read by shape
      for (const pair of (o.map.elem ?? []) as [unknown, Record<string, any>][]) {
        const key = unwrap(pair[0]);
        const verdict = pair[1] ?? {};
        const chain: string = verdict.jump?.target ?? verdict.goto?.target ?? '';
        into.elements.push({ map: o.map.name as MapName, key, keyId: keyId(key), chain });
      }
    } else if (o.set && o.set.table === TABLE) {
      const keys = ((o.set.elem ?? []) as unknown[]).map(unwrap);
      into.sets.set(chainKey(family, o.set.name), new Set(keys.map(String)));
      into.setKeys.set(chainKey(family, o.set.name), keys);
    }
  }
}

export async function readState(b: NftBackend, netns: string | undefined): Promise<Observed> {
  const [inet, bridge] = await Promise.all([b.listTable('inet', TABLE, netns), b.listTable('bridge', TABLE, netns)]);
  const st: Observed = { tables: new Set(), chains: new Map(), elements: [], sets: new Map(), setKeys: new Map() };
  if (inet) absorb(st, 'inet', inet);
  if (bridge) absorb(st, 'bridge', bridge);
  return st;
}

/**
 * What one attachment (`tag`) can own: its per-container chains (found in the chain lists, without rules) and
 * the elements of the verdict maps that dispatch to containers. Listing a table costs every rule of every attachment and the anonymous
 * sets they use (≈ 30 ms and more at 300 attached here, growing with each); the chain names and map elements
 * cost ≈ 1 ms each; on an icc: false bridge its own policy records (what names it) too, never the allow sets.
 * Enough for byTag(…).get(tag) and deleting what it finds; `tables`, other sets and the per-bridge maps are not filled in.
 */
export async function readAttachmentState(b: NftBackend, netns: string | undefined, tag: string): Promise<Observed> {
  const st: Observed = { tables: new Set(), chains: new Map(), elements: [], sets: new Map(), setKeys: new Map() };
  // One listing of every chain (names only; absorb() keeps netplumb's), one per verdict map that can point at a
  // container's chains (the per-bridge ones never do): `list maps` would load the elements of every set of the
  // namespace first — the allow sets and records with them, so it grows with the number of rules (measured
  // here, 20 attached: 0.6 ms with none, 13 ms with 1000; 300 attached: 25 and 75 ms), where the map listings
  // stay ≈ 0.06 ms each at 20 attached and ≈ 0.85 ms at 300.
  const [chains, ...maps] = await Promise.all([b.list(['chains'], netns), ...CONTAINER_MAPS.map((m) => b.list(['map', MAPS[m].family, TABLE, m], netns))]);
  const listed = [...(chains ?? []), ...maps.flatMap((m) => m ?? [])];
  for (const family of ['inet', 'bridge'] as const) {
    absorb(
      st,
      family,
      listed.filter((o) => (o.chain ?? o.map)?.family === family && (!o.chain || parseContainerChain(o.chain.name)?.tag === tag)),
    );
  }
  // An attachment on an icc: false bridge may be named by allow rules: its records list what its DEL removes.
  // One listing per family it has addresses of (its masq4/masq6 elements): each call fills its own cache.
  const own = st.elements.filter((e) => parseContainerChain(e.chain)?.tag === tag);
  if (own.some((e) => e.map === 'icc_ports')) {
    const families = ([4, 6] as const).filter((f) => own.some((e) => e.map === `masq${f}`));
    const records = await Promise.all(families.map((f) => b.list(['set', 'inet', TABLE, policyRecord(tag, f)], netns)));
    for (const objects of records) if (objects) absorb(st, 'inet', objects);
  }
  return st;
}

/** Per-container chains and elements grouped by attachment tag. */
export function byTag(st: Observed): Map<string, { chains: ObservedChain[]; elements: ObservedElement[] }> {
  const out = new Map<string, { chains: ObservedChain[]; elements: ObservedElement[] }>();
  const entry = (tag: string) => {
    let e = out.get(tag);
    if (!e) out.set(tag, (e = { chains: [], elements: [] }));
    return e;
  };
  for (const c of st.chains.values()) {
    const p = parseContainerChain(c.name);
    if (p) entry(p.tag).chains.push(c);
  }
  for (const el of st.elements) {
    const p = parseContainerChain(el.chain);
    if (p) entry(p.tag).elements.push(el);
  }
  return out;
}
