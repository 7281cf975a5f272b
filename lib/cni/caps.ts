/**
 * The capabilities a plugin needs, checked before it acts: a plugin run with too few fails at once, with the
 * missing ones named, instead of halfway with an EPERM after it changed the IPAM store.
 * See docs/CNI.md for the rest.
 */
import { readFileSync } from 'node:fs';
import type { Capability } from '../errors.js';
import { CNI_ERR, CniError } from './errors.js';

export type { Capability };
const BIT: Record<Capability, number> = { CAP_NET_ADMIN: 12, CAP_NET_RAW: 13, CAP_SYS_ADMIN: 21 };

/** The effective capability set of this process (/proc/self/status), or undefined if it cannot be read. */
export function effectiveCapabilities(): bigint | undefined {
  try {
    const m = /^CapEff:\s+([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? BigInt(`0x${m[1]}`) : undefined;
  } catch {
    return undefined;
  }
}

/** Throws error 107 naming every capability of `needed` missing from the effective set. */
export function checkCapabilities(plugin: string, needed: readonly Capability[], have = effectiveCapabilities()): void {
  if (needed.length === 0 || have === undefined) return; // no /proc: let the kernel answer
  const missing = needed.filter((c) => (have & (1n << BigInt(BIT[c]))) === 0n);
  if (missing.length === 0) return;
  throw new CniError(
    CNI_ERR.NOT_PERMITTED,
    `${plugin} needs ${needed.join(' and ')}; ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} missing from its effective capabilities`,
    {
      object: missing.join(','),
      details: missing.join(','),
    },
  );
}
