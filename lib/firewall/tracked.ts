/**
 * What this process knows its own transactions left in place: the skeleton (tables, maps, sets, base chains
 * and their rules) and the bridges registered (isolation chains and elements), valid for exactly one
 * generation of the ruleset (generation.ts). A resident process (the agent) commits one attachment after
 * another; as long as every commit since its last skeleton was its own, the skeleton and those registrations
 * are as it wrote them, and an ADD may leave them out of its transaction (≈ 0.6 ms of the ≈ 0.8 ms it costs
 * libnftables). Anyone else's commit, whatever it changed — `nft flush ruleset`, a plugin exec, iptables-nft —
 * moves the generation on, and the next ADD sends them in full, as every ADD did before.
 *
 * How a commit is known to be the only one: the generation is read (G0), the transaction committed, the
 * generation read again (G1), all synchronously, so no other request of this process commits in between. A
 * commit bumps the generation by one, a failed transaction not at all; G1 = G0 + 1 means this transaction
 * was the only commit — every tracked transaction changes something, so it bumps the generation itself.
 * Only the own namespace and the libnftables backend are tracked: the nft program is a process of its own.
 * See docs/FIREWALL.md for the rest.
 */
import { rulesetGeneration } from './generation.js';
import type { NftBackend, NftCommand } from './nft.js';

/** What is known intact at one generation: the skeleton, and the registration (by content) of each bridge named. */
interface Intact {
  generation: number;
  /** bridge → the key of the registration last committed for it */
  bridges: ReadonlyMap<string, string>;
}

let intact: Intact | undefined;

/** A bridge's registration as committed: the bridge, and a key of everything its commands were made from. */
export interface Registration {
  bridge: string;
  key: string;
}

/** The commands of one tracked transaction, chosen knowing what is intact. */
export interface TrackedCommands {
  commands: NftCommand[];
  /** the bridge whose registration the commands (re)write together with the whole skeleton; none: they leave both as they were */
  registers?: Registration | undefined;
}

/** What is intact right now, if anything: whether `registration` still stands as committed (the skeleton with it). */
export interface Known {
  registered(r: Registration): boolean;
}

/**
 * Commits a transaction built by `build` in the caller's own namespace, tracking what it leaves intact.
 * Returns false, committing nothing, when the backend cannot commit synchronously (the caller then applies
 * its full commands as usual); throws what the transaction throws.
 */
export function commitTracked(b: NftBackend, build: (known: Known) => TrackedCommands): boolean {
  if (b.applyNow === undefined) return false;
  const g0 = rulesetGeneration();
  const now = g0 !== undefined && intact?.generation === g0 ? intact : undefined;
  const { commands, registers } = build({ registered: (r) => now?.bridges.get(r.bridge) === r.key });
  b.applyNow(commands);
  const g1 = rulesetGeneration();
  if (g0 === undefined || g1 !== g0 + 1) {
    // Someone else committed too (or the generation cannot be read): nothing is known any more.
    intact = undefined;
  } else if (registers !== undefined) {
    intact = { generation: g1, bridges: new Map(now?.bridges ?? []).set(registers.bridge, registers.key) };
  } else {
    intact = now === undefined ? undefined : { generation: g1, bridges: now.bridges };
  }
  return true;
}
