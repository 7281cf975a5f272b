/** "Make sure this bridge exists": what the CNI bridge plugin and the walkthrough need before adding ports. See docs/NET.md. */
import { canonicalCidr, parseCidr } from '../addr/ip.js';
import { ERR, NetplumbError } from '../errors.js';
import { addAddress, listAddresses } from './addr.js';
import type { Handle } from './handle.js';
import { createLink, findLink, setLink } from './link.js';
import type { BridgeConfig, BridgeLink } from './link-types.js';

/** How ensureBridge creates the bridge when it is absent, and what it must have. */
export interface EnsureBridgeOptions extends Omit<BridgeConfig, 'kind' | 'name'> {
  /** an address (`172.17.42.1/16`) the bridge must have; added when missing */
  address?: string;
}

/**
 * Returns the bridge `name`, creating it (with `opts`) if absent. Refuses (ERR_LINK_KIND) when `name` is a link of
 * another kind. Brings it up when `up` is set, and adds `address` when the bridge lacks it.
 * `created` tells whether this call made it.
 * Equivalent to: `ip link show NAME type bridge || ip link add NAME type bridge …; ip link set NAME up; ip addr add ADDRESS dev NAME`.
 */
export async function ensureBridge(h: Handle, name: string, opts: EnsureBridgeOptions = {}): Promise<{ link: BridgeLink; created: boolean }> {
  const { address, ...cfg } = opts;
  let link = await findLink(h, name);
  let created = false;
  if (!link) {
    try {
      await createLink(h, { ...cfg, kind: 'bridge', name });
      created = true;
    } catch (e) {
      if ((e as { code?: string }).code !== 'EEXIST') throw e; // someone else made it meanwhile: fine if a bridge
    }
    link = await findLink(h, name);
    if (!link) throw new NetplumbError(`bridge ${name} vanished while being created`, { code: 'ENODEV', op: 'ensureBridge', object: name });
  }
  if (link.kind !== 'bridge') {
    throw new NetplumbError(`link ${name} exists and is not a bridge (kind ${link.infoKind ?? 'device'})`, {
      code: ERR.LINK_KIND,
      op: 'ensureBridge',
      object: name,
    });
  }
  if (opts.up && !link.up) await setLink(h, link.index, { up: true });
  if (address !== undefined) {
    const want = parseCidr(address, 'bridge address', { bare: true });
    const canonical = canonicalCidr(address); // fd00:0::1 and fd00::1 are one address
    const have = await listAddresses(h, { link: link.index, family: want.family });
    if (!have.some((a) => a.cidr === canonical)) await addAddress(h, { link: link.index, cidr: address });
  }
  return { link, created };
}
