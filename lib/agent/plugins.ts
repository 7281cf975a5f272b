/**
 * The plugins the agent runs in process, by the name of their executable: the same CniPlugin objects the
 * plugin executables hand to runPlugin(), so a verb through the agent runs exactly the code it would run in a
 * fresh process. Loaded on first use (a status request loads none of them).
 */
import type { CniPlugin } from '../cni/skeleton.js';

const LOADERS: Record<string, () => Promise<CniPlugin>> = {
  'netplumb-bridge': async () => (await import('../modes/bridge.js')).bridgePlugin,
  'netplumb-container': async () => (await import('../modes/container.js')).containerPlugin,
  'netplumb-host': async () => (await import('../modes/host.js')).hostPlugin,
  'netplumb-none': async () => (await import('../modes/none.js')).nonePlugin,
  'netplumb-host-local': async () => (await import('../modes/host-local.js')).hostLocal,
  'netplumb-overlay': async () => (await import('../modes/overlay.js')).overlayPlugin,
};

/** The executable names the agent serves. */
export const AGENT_PLUGINS: readonly string[] = Object.keys(LOADERS);

/** The in-process plugin behind executable `name`, or undefined for a name the agent does not serve. */
export async function agentPlugin(name: string): Promise<CniPlugin | undefined> {
  return Object.hasOwn(LOADERS, name) ? LOADERS[name]!() : undefined;
}
