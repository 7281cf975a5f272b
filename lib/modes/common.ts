/**
 * What the none, host and container modes share: namespace identities, and the refusal of
 * a prevResult where a mode must come first. Loads no native code (describe.ts does: netlink).
 */
import { statSync } from 'node:fs';
import { CNI_ERR, CniError } from '../cni/errors.js';
import type { CniRequest } from '../cni/request.js';

/** `dev:ino` of the namespace file at `path` (follows symlinks, as opening it would). */
export function netnsIdOf(path: string): string {
  const st = statSync(path);
  return `${st.dev}:${st.ino}`;
}

/** `net:[4026531840]`, as readlink(/proc/PID/ns/net) names a namespace, for messages. */
export function nsLabel(id: string): string {
  return `net:[${id.split(':')[1]}]`;
}

/**
 * The modes that give a container an existing network (host, container) must be the first plugin of their
 * list: a prevResult at ADD means another plugin already built a network for this container, which the mode
 * would then hide or contradict.
 */
export function refusePrevResult(req: CniRequest, plugin: string): void {
  if (req.prevResult !== undefined) {
    throw new CniError(
      CNI_ERR.INVALID_NETWORK_CONFIG,
      `${plugin} must be the first plugin of network "${req.name}": it got a prevResult, so an earlier plugin already gave the container a network of its own`,
      {
        object: 'prevResult',
      },
    );
  }
}
