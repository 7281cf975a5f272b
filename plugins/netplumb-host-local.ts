/**
 * netplumb-host-local: the CNI IPAM plugin (host-local compatible). All logic is in lib/modes/host-local.ts. No
 * top-level await, so that scripts/write-plugin-bins.mjs can bundle it into one CommonJS file.
 */
import { hostLocal } from '../lib/modes/host-local.js';
import { runPlugin } from '../lib/cni/skeleton.js';

void runPlugin(hostLocal);
