/**
 * Chaining: a plugin later in a network configuration list gets the Result so far as prevResult and
 * answers that Result with its own appended (CNI spec, "Chained plugins").
 */
import type { CniResult } from './types.js';
import { CURRENT_VERSION } from './version.js';

/**
 * `ours` appended to `prev`: its interfaces after the earlier ones (so its `ips[].interface` indexes are
 * shifted by their number), its addresses and routes after theirs, its DNS if it has any, else theirs.
 * Without a prevResult, `ours` as it is.
 */
export function chainResult(prev: CniResult | undefined, ours: CniResult): CniResult {
  if (prev === undefined) return ours;
  const shift = prev.interfaces?.length ?? 0;
  const out: CniResult = {
    cniVersion: CURRENT_VERSION,
    interfaces: [...(prev.interfaces ?? []), ...(ours.interfaces ?? [])],
    ips: [...(prev.ips ?? []), ...(ours.ips ?? []).map((ip) => (ip.interface === undefined ? ip : { ...ip, interface: ip.interface + shift }))],
    routes: [...(prev.routes ?? []), ...(ours.routes ?? [])],
  };
  const dns = ours.dns ?? prev.dns;
  if (dns !== undefined) out.dns = dns;
  return out;
}
