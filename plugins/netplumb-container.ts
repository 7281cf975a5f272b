/** netplumb-container: the CNI plugin. All logic is in lib/modes/container.ts. */
import { containerPlugin } from '../lib/modes/container.js';
import { runPlugin } from '../lib/cni/skeleton.js';

void runPlugin(containerPlugin); // no top-level await: scripts/write-plugin-bins.mjs bundles it
