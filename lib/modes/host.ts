/**
 * netplumb-host: Docker's `--net=host`. The container shares the host's network stack, so there is nothing to
 * build; what the plugin guards is the one thing that can go wrong: CNI_NETNS must be the host's own network
 * namespace — the namespace the plugin runs in, which is the runtime's — compared by device and inode, never by
 * path. Anything else is refused (error 8), so a misconfigured runtime can neither believe a container got the
 * host's network when it has its own, nor hand a container the host's network by accident.
 *
 *   ADD    refuses (8) unless CNI_NETNS is the host's namespace, (7) with a prevResult; creates nothing; Result:
 *          the host's interfaces (all but loopback) with their usable global addresses, the default routes,
 *          each interface's sandbox being CNI_NETNS.
 *   CHECK  CNI_NETNS is still the host's namespace (8 otherwise).
 *   DEL    nothing, always successful (CNI_NETNS may be empty, vanished or anything else).
 *   GC, STATUS  nothing to collect; always ready.
 * See docs/MODES.md for the rest.
 */
import { CNI_ERR, CniError } from '../cni/errors.js';
import type { CniRequest } from '../cni/request.js';
import type { CniPlugin } from '../cni/skeleton.js';
import { netnsIdOf, nsLabel, refusePrevResult } from './common.js';

/** Throws error 8 unless CNI_NETNS is the plugin's own network namespace. */
export function assertHostNetns(req: CniRequest): void {
  const own = netnsIdOf('/proc/self/ns/net');
  const given = netnsIdOf(req.netns);
  if (given !== own) {
    throw new CniError(
      CNI_ERR.INVALID_NETNS,
      `CNI_NETNS ${req.netns} is network namespace ${nsLabel(given)}, not the host's (${nsLabel(own)}, where netplumb-host runs); ` +
        "refusing: a container in host mode must be started in the host's network namespace, and a container with a namespace of its own needs another mode",
      { object: req.netns, details: `CNI_NETNS=${req.netns} ${nsLabel(given)}; host ${nsLabel(own)}` },
    );
  }
}

export const hostPlugin: CniPlugin = {
  name: 'netplumb-host',
  about: "netplumb-host: the host's network stack (Docker's --net=host)",
  netns: 'exists',

  async add(req) {
    assertHostNetns(req);
    refusePrevResult(req, 'netplumb-host');
    // netlink only on the path that needs it: DEL, GC, STATUS and VERSION start without it
    const [{ openHandleSync }, { describeNamespace }] = await Promise.all([import('../net/handle.js'), import('./describe.js')]);
    const h = openHandleSync();
    try {
      return { cniVersion: req.cniVersion, ...(await describeNamespace(h, req.netns)) };
    } finally {
      h.close();
    }
  },

  async check(req) {
    assertHostNetns(req);
  },

  async del() {
    /* ADD created nothing */
  },
};
