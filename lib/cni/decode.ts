/**
 * Decoding a network configuration the way the reference plugins do. They are Go programs that decode
 * stdin with encoding/json into structs, so a key matches a known field case-insensitively (an exact match
 * first) and a value of the wrong JSON type fails the decoding. Runtimes rely on it: containerd's CRI sends
 * `runtimeConfig.portMappings` as `{"HostPort":…,"ContainerPort":…,"Protocol":…,"HostIP":…}` (Go field
 * names, no JSON tags).
 *
 * A plugin declares its fields as a table (name → type, nested for objects and lists); `decodeFields`
 * returns a copy of the input in which every key that names a declared field is spelt as declared and every
 * declared field holds a value of its type. Keys no table declares stay as they are (the spec: a plugin
 * ignores fields it does not know). `null` is accepted for every field, as Go leaves the field unset.
 */
import { invalidConfig } from './errors.js';

/** The JSON type of a field: a scalar, an object of declared fields, a list, or a map (keys kept as given). */
export type FieldType =
  | 'string'
  | 'boolean'
  | 'integer'
  | 'number'
  /** any JSON value (decoded elsewhere) */
  | 'any'
  /** an object whose keys are not fields (Go `map[string]interface{}`) */
  | 'object'
  | { readonly fields: FieldTable }
  | { readonly list: FieldType }
  | { readonly map: FieldType };

/** Field name (as the reference's JSON tag spells it) → its type. */
export type FieldTable = Readonly<Record<string, FieldType>>;

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A key folded as Go's encoding/json compares keys to field names (bytes.EqualFold, with the two
 * non-ASCII letters that fold to ASCII ones: KELVIN SIGN to k and LATIN SMALL LETTER LONG S to s).
 */
export function foldKey(key: string): string {
  return key
    .replace(/\u212a/g, 'k')
    .replace(/\u017f/g, 's')
    .toLowerCase();
}

/** Folded name → declared name, per table (tables are module constants, so this is computed once each). */
const foldedNames = new WeakMap<FieldTable, Map<string, string>>();

function foldedOf(table: FieldTable): Map<string, string> {
  let m = foldedNames.get(table);
  if (m === undefined) {
    m = new Map(Object.keys(table).map((k) => [foldKey(k), k]));
    foldedNames.set(table, m);
  }
  return m;
}

function typeName(t: FieldType): string {
  if (typeof t === 'string') return t === 'boolean' ? 'true or false' : t === 'object' || t === 'integer' ? `an ${t}` : `a ${t}`;
  if ('fields' in t) return 'an object';
  if ('list' in t) return 'a list';
  return 'an object';
}

function mismatch(where: string, t: FieldType, v: unknown): never {
  const shown = JSON.stringify(v) ?? String(v);
  throw invalidConfig(`"${where}" must be ${typeName(t)}, not ${shown.length > 80 ? `${shown.slice(0, 80)}…` : shown}`, where);
}

function decodeValue(v: unknown, t: FieldType, where: string): unknown {
  if (v === null || t === 'any') return v;
  if (typeof t === 'string') {
    const ok =
      t === 'object' ? isObject(v) : t === 'integer' ? typeof v === 'number' && Number.isInteger(v) : t === 'number' ? typeof v === 'number' : typeof v === t;
    if (!ok) mismatch(where, t, v);
    return v;
  }
  if ('fields' in t) {
    if (!isObject(v)) mismatch(where, t, v);
    return decodeFields(v, t.fields, where);
  }
  if ('list' in t) {
    if (!Array.isArray(v)) mismatch(where, t, v);
    return v.map((x, i) => decodeValue(x, t.list, `${where}[${i}]`));
  }
  if (!isObject(v)) mismatch(where, t, v);
  const out: Json = {};
  for (const [k, x] of Object.entries(v)) out[k] = decodeValue(x, t.map, `${where}.${k}`);
  return out;
}

/**
 * `obj` with the keys of `table`'s fields spelt as declared and their values checked (error 7 naming the
 * field, e.g. `runtimeConfig.portMappings[0].hostPort`). A key matches a field exactly, else
 * case-insensitively; when several keys fold to one field, the exact one wins, else the last (Go assigns
 * in document order). `where` prefixes the names in messages.
 */
export function decodeFields(obj: Json, table: FieldTable, where = ''): Json {
  const folded = foldedOf(table);
  const chosen = new Map<string, string>(); // declared name → the input key that supplies it
  for (const k of Object.keys(obj)) {
    const name = Object.hasOwn(table, k) ? k : folded.get(foldKey(k));
    if (name === undefined) continue;
    if (chosen.get(name) !== name) chosen.set(name, k); // an exact key is never replaced
  }
  const out: Json = {};
  for (const [k, v] of Object.entries(obj)) {
    const name = Object.hasOwn(table, k) ? k : folded.get(foldKey(k));
    if (name === undefined) {
      out[k] = v;
    } else if (chosen.get(name) === k) {
      out[name] = decodeValue(v, table[name]!, where === '' ? name : `${where}.${name}`);
    }
  }
  return out;
}

/** `a` and `b` together; where both declare an object field, its tables are merged the same way. */
export function mergeFields(a: FieldTable, b: FieldTable): FieldTable {
  const out: Record<string, FieldType> = { ...a };
  for (const [k, t] of Object.entries(b)) {
    const prev = out[k];
    out[k] =
      prev !== undefined && typeof prev === 'object' && 'fields' in prev && typeof t === 'object' && 'fields' in t
        ? { fields: mergeFields(prev.fields, t.fields) }
        : t;
  }
  return out;
}

/** A route (CNI spec; Go `types.Route`). */
export const ROUTE_FIELDS: FieldTable = {
  dst: 'string',
  gw: 'string',
  mtu: 'integer',
  advmss: 'integer',
  priority: 'integer',
  table: 'integer',
  scope: 'integer',
};

/** DNS settings (Go `types.DNS`). */
export const DNS_FIELDS: FieldTable = { nameservers: { list: 'string' }, domain: 'string', search: { list: 'string' }, options: { list: 'string' } };

/** A Result of any version (Go `types100.Result` and the 0.x `version` of an IP config). */
export const RESULT_FIELDS: FieldTable = {
  cniVersion: 'string',
  interfaces: { list: { fields: { name: 'string', mac: 'string', mtu: 'integer', sandbox: 'string', socketPath: 'string', pciID: 'string' } } },
  ips: { list: { fields: { version: 'string', interface: 'integer', address: 'string', gateway: 'string' } } },
  routes: { list: { fields: ROUTE_FIELDS } },
  dns: { fields: DNS_FIELDS },
};

/**
 * The fields every network configuration has, with the types the spec gives them (Go `types.NetConf`),
 * and the GC list of attachments. `runtimeConfig` and `args` are objects whose fields each plugin declares.
 */
export const NETCONF_FIELDS: FieldTable = {
  cniVersion: 'any', // checked by the request parser, with its own code (6)
  name: 'any', // checked by the request parser, with the reference's wording
  type: 'string',
  capabilities: { map: 'boolean' },
  ipam: { fields: { type: 'string' } },
  dns: { fields: DNS_FIELDS },
  prevResult: { fields: RESULT_FIELDS },
  runtimeConfig: { fields: {} },
  args: { fields: {} },
  'cni.dev/valid-attachments': { list: { fields: { containerID: 'string', ifname: 'string' } } },
  'cni.dev/attachments': { list: { fields: { containerID: 'string', ifname: 'string' } } },
};

/** The whole network configuration decoded with the spec's fields and the plugin's own (`fields`). */
export function decodeNetConf(config: Json, fields: FieldTable = {}): Json {
  return decodeFields(config, fields === NETCONF_FIELDS ? fields : mergeFields(NETCONF_FIELDS, fields));
}
