/** netplumb-host-local: the CNI IPAM plugin (host-local compatible). All logic is in lib/cni/host-local.ts. */
import { hostLocal } from '../lib/cni/host-local.js';
import { runPlugin } from '../lib/cni/skeleton.js';

await runPlugin(hostLocal);
