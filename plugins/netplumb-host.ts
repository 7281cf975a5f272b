/** netplumb-host: the CNI plugin. All logic is in lib/modes/host.ts. */
import { hostPlugin } from '../lib/modes/host.js';
import { runPlugin } from '../lib/cni/skeleton.js';

void runPlugin(hostPlugin); // no top-level await: scripts/write-plugin-bins.mjs bundles it
