/**
 * netplumb-bridge: the CNI bridge plugin. All logic is in lib/modes/bridge.ts. No top-level await, so that
 * scripts/write-plugin-bins.mjs can bundle it into one CommonJS file (a plugin process then loads one file).
 */
import { mark, timingStart } from '../lib/modes/timing.js';

timingStart('netplumb-bridge');
void Promise.all([import('../lib/cni/skeleton.js'), import('../lib/modes/bridge.js')]).then(([{ runPlugin }, { bridgePlugin }]) => {
  mark('modules');
  return runPlugin(bridgePlugin);
});
