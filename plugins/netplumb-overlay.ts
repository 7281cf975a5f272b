/**
 * netplumb-overlay: containers on the VXLAN overlay across hosts. All logic is in lib/modes/overlay.ts (which
 * delegates to netplumb-bridge). No top-level await, so that scripts/write-plugin-bins.mjs can bundle it.
 */
import { mark, timingStart } from '../lib/modes/timing.js';

timingStart('netplumb-overlay');
void Promise.all([import('../lib/cni/skeleton.js'), import('../lib/modes/overlay.js')]).then(([{ runPlugin }, { overlayPlugin }]) => {
  mark('modules');
  return runPlugin(overlayPlugin);
});
