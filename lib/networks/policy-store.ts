/**
 * A network's allow rules on disk: `<state>/networks/NAME/policy.json`, written atomically, beside the
 * network's definition. Rules name endpoints by container ID (stable while attached); a rule naming an
 * endpoint goes when the endpoint does.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERR, NetplumbError } from '../errors.js';
import { networkDir, writeJsonAtomic, type StoreOptions } from './store.js';

export type PolicyProtocol = 'tcp' | 'udp' | 'sctp';

export interface PolicyRule {
  /** 12 hex characters, unique in the network */
  id: string;
  /** container IDs of the sources */
  from: string[];
  /** container ID of the destination */
  to: string;
  ports: { protocol: PolicyProtocol; port: number }[];
  created: string;
}

const policyFile = (network: string, opts?: StoreOptions) => join(networkDir(network, opts), 'policy.json');

/** The network's rules ([] when it has none). */
export function readPolicy(network: string, opts?: StoreOptions): PolicyRule[] {
  try {
    return JSON.parse(readFileSync(policyFile(network, opts), 'utf8')) as PolicyRule[];
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

export function writePolicy(network: string, rules: readonly PolicyRule[], opts?: StoreOptions): void {
  writeJsonAtomic(policyFile(network, opts), rules);
}

/**
 * Forgets `containerId` in the network's rules: rules to it go, it leaves the sources of the others (a rule
 * left without sources goes). Its set elements went with its CNI DEL (lib/firewall removes every element
 * naming its addresses).
 */
export function forgetPolicyOf(network: string, containerId: string, opts?: StoreOptions): void {
  const rules = readPolicy(network, opts);
  const kept = rules
    .filter((r) => r.to !== containerId)
    .map((r) => ({ ...r, from: r.from.filter((f) => f !== containerId) }))
    .filter((r) => r.from.length > 0);
  if (JSON.stringify(kept) !== JSON.stringify(rules)) writePolicy(network, kept, opts);
}

/** Parses a port of a rule: `80/tcp`, `53/udp`, `80` (tcp). Light on purpose: the command parses with it before
 * it loads anything that talks to the kernel.
 */
export function parsePortSpec(s: string): { protocol: PolicyProtocol; port: number } {
  const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/.exec(s);
  const port = m ? Number(m[1]) : NaN;
  if (!m || port < 1 || port > 65535)
    throw new NetplumbError(`port ${JSON.stringify(s)}: write PORT[/tcp|udp|sctp] with PORT 1-65535, e.g. 80/tcp`, {
      code: ERR.INVALID_ARG_VALUE,
      op: 'policy',
      object: s,
    });
  return { protocol: (m[2] ?? 'tcp') as PolicyProtocol, port };
}
