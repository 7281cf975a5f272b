/** netplumb-bridge: the CNI bridge plugin. All logic is in lib/modes/bridge.ts. */
import { timingStart, mark } from '../lib/modes/timing.js';

timingStart('netplumb-bridge');
const [{ runPlugin }, { bridgePlugin }] = await Promise.all([import('../lib/cni/skeleton.js'), import('../lib/modes/bridge.js')]);
mark('modules');
await runPlugin(bridgePlugin);
