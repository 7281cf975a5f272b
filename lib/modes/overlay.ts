/**
 * netplumb-overlay: the CNI plugin of a network that spans hosts. It holds no logic of its own beyond reading
 * what netplumbd's overlay wrote for this host (`<stateDir>/<network>.json`: the leased subnet, the containers'
 * MTU, the bridge, whether etcd answers) and delegating to netplumb-bridge with the range and MTU filled in,
 * as flannel's plugin delegates to the reference bridge. While the store cannot vouch for this host's lease
 * (netplumbd not running the overlay, or etcd unreachable) an ADD fails with error 11, "try again later":
 * addresses from a subnet the host may no longer hold could be handed out twice. DEL always delegates.
 * docs/OVERLAY.md.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { delegate } from '../cni/delegate.js';
import { CNI_ERR, CniError, invalidConfig } from '../cni/errors.js';
import type { CniRequest } from '../cni/request.js';
import type { CniPlugin } from '../cni/skeleton.js';
import type { CniResult } from '../cni/types.js';

/** Where netplumbd writes each overlay's state (one file per network). */
export const OVERLAY_STATE_DIR = '/run/netplumb/overlay';

/** What netplumbd's overlay publishes for this host's plugins. */
export interface OverlayHostState {
  name: string;
  node: string;
  subnet: string;
  gateway: string;
  /** the containers' MTU: the underlay's less the VXLAN overhead */
  mtu: number;
  vtepIp: string;
  vtepMac: string;
  device: string;
  bridge: string;
  /** the subnet store's endpoints, for messages */
  store: string;
  /** why the store cannot vouch for the lease now; absent while it answers */
  storeError?: string;
}

/** Path of the state file of overlay `name`. */
export function overlayStatePath(dir: string, name: string): string {
  return join(dir, `${name}.json`);
}

/** The state of overlay `name`, or undefined when netplumbd has written none. */
export function readOverlayState(dir: string, name: string): OverlayHostState | undefined {
  try {
    return JSON.parse(readFileSync(overlayStatePath(dir, name), 'utf8')) as OverlayHostState;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

function stateDirOf(req: CniRequest): string {
  const dir = (req.config as Record<string, unknown>).stateDir ?? OVERLAY_STATE_DIR;
  if (typeof dir !== 'string' || !dir.startsWith('/')) throw invalidConfig('stateDir must be an absolute path');
  return dir;
}

/** The netplumb-bridge configuration for this host: the request's own keys, the lease's range and MTU. */
export function bridgeConfFor(req: CniRequest, s: OverlayHostState): Record<string, unknown> {
  const { type: _type, stateDir: _dir, dataDir, ...rest } = req.config as Record<string, unknown>;
  return {
    ...rest,
    type: 'netplumb-bridge',
    bridge: s.bridge,
    isGateway: true,
    // traffic to other hosts' containers keeps its source address
    ipMasq: false,
    mtu: s.mtu,
    ipam: {
      type: 'host-local',
      ranges: [[{ subnet: s.subnet, gateway: s.gateway }]],
      routes: [{ dst: '0.0.0.0/0' }],
      ...(typeof dataDir === 'string' ? { dataDir } : {}),
    },
  };
}

const bridge = { 'netplumb-bridge': async () => (await import('./bridge.js')).bridgePlugin };

function stateFor(req: CniRequest, forAdd: boolean): OverlayHostState {
  const s = readOverlayState(stateDirOf(req), req.name);
  if (s === undefined) {
    throw new CniError(
      CNI_ERR.TRY_AGAIN_LATER,
      `overlay ${req.name}: this host has no subnet lease yet (is netplumbd running the overlay, and etcd reachable?)`,
      { object: req.name },
    );
  }
  if (forAdd && s.storeError !== undefined) {
    throw new CniError(CNI_ERR.TRY_AGAIN_LATER, `overlay ${req.name}: etcd (${s.store}) cannot confirm this host's subnet lease: ${s.storeError}`, {
      object: req.name,
    });
  }
  return s;
}

async function run(command: 'ADD' | 'DEL' | 'CHECK', req: CniRequest): Promise<CniResult | undefined> {
  const s = stateFor(req, command === 'ADD');
  return delegate('netplumb-bridge', command, req, { stdin: JSON.stringify(bridgeConfFor(req, s)), plugins: bridge });
}

export const overlayPlugin: CniPlugin = {
  name: 'netplumb-overlay',
  about: 'netplumb-overlay: containers on a VXLAN overlay across hosts (netplumb-bridge with the subnet netplumbd leased)',
  netns: 'foreign',
  capabilities: ['CAP_NET_ADMIN', 'CAP_SYS_ADMIN'],
  async add(req) {
    return (await run('ADD', req))!;
  },
  async del(req) {
    // without a state file there is nothing this host ever attached
    if (readOverlayState(stateDirOf(req), req.name) === undefined) return;
    await run('DEL', req);
  },
  async check(req) {
    await run('CHECK', req);
  },
};
