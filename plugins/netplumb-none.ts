/** netplumb-none: the CNI plugin. All logic is in lib/modes/none.ts. */
import { nonePlugin } from '../lib/modes/none.js';
import { runPlugin } from '../lib/cni/skeleton.js';

void runPlugin(nonePlugin); // no top-level await: scripts/write-plugin-bins.mjs bundles it
