/**
 * The overlay inside netplumbd: finds the underlay, makes the VXLAN device, leases this host's subnet from the
 * subnet source (etcd), writes what netplumb-bridge needs (the CNI network list with the leased range and
 * MTU = underlay − 50, or − 70 over an IPv6 underlay) and keeps the other hosts programmed. Failures of the
 * store leave the data plane as it is. docs/OVERLAY.md.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openHandleSync } from '../../net/handle.js';
import { overlayStatePath, type OverlayHostState } from '../../modes/overlay.js';
import type { AgentLog } from '../log.js';
import { nthAddress, parseOverlayConfig, type OverlayConfig } from './config.js';
import { ensureVxlan, findUnderlay, peersOfFamily, reconcile, setDeviceSubnet } from './dataplane.js';
import { EtcdSubnetSource } from './etcd-source.js';
import type { HostRecord, SubnetSource } from './subnet-source.js';

export { parseOverlayConfig, type OverlayConfig } from './config.js';
export type { HostRecord, SubnetSource } from './subnet-source.js';

/** What the agent wrote for this host: `<stateDir>/<name>.json`, read by netplumb-overlay. */
export type OverlayState = OverlayHostState;

export interface Overlay {
  readonly config: OverlayConfig;
  readonly state: OverlayState;
  /** the other hosts as last programmed */
  readonly peers: readonly HostRecord[];
  /** path of the CNI network list for this overlay (netplumb-bridge with the leased range) */
  readonly conflistPath: string;
  /** stops renewing and watching; the data plane stays (with `release`, the subnet is given back at once) */
  close(opts?: { release?: boolean }): Promise<void>;
}

function writeAtomic(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text, { mode: 0o644 });
  renameSync(`${path}.tmp`, path);
}

/** The CNI network list for this overlay: netplumb-overlay, which takes range and MTU from the state file. */
export function overlayConflist(cfg: OverlayConfig): unknown {
  return { cniVersion: '1.0.0', name: cfg.name, plugins: [{ type: 'netplumb-overlay', stateDir: cfg.stateDir }] };
}

/** Starts the overlay of configuration `raw` (an object, or the text of a JSON file) in the agent's namespace. */
export async function startOverlay(raw: unknown, log: AgentLog, source?: SubnetSource): Promise<Overlay> {
  const cfg = parseOverlayConfig(typeof raw === 'string' ? JSON.parse(raw) : raw);
  // first the source: it reads the TLS files, and a wrong one must leave the host untouched
  const src = source ?? new EtcdSubnetSource(cfg);
  const h = openHandleSync();
  try {
    const underlay = await findUnderlay(h, cfg.underlay);
    const { mac, mtu } = await ensureVxlan(h, cfg, underlay);
    mkdirSync(cfg.stateDir, { recursive: true, mode: 0o755 });
    const statePath = overlayStatePath(cfg.stateDir, cfg.name);
    let preferred: string | undefined;
    try {
      preferred = (JSON.parse(readFileSync(statePath, 'utf8')) as OverlayState).subnet;
    } catch {
      /* first start on this host */
    }
    const vtep = { vtepIp: underlay.address, vtepMac: mac };
    const subnet = await src.acquire(vtep, preferred);
    await setDeviceSubnet(h, cfg, subnet);
    let state: OverlayState = {
      name: cfg.name,
      node: cfg.node,
      subnet,
      gateway: nthAddress(subnet, 1),
      mtu,
      ...vtep,
      device: cfg.device,
      bridge: cfg.bridge,
      store: cfg.etcd.endpoints.join(','),
    };
    // the plugin reads this on every ADD: written whole (rename) whenever the lease or the store's health changes
    const publish = (next: OverlayState) => {
      state = next;
      writeAtomic(statePath, `${JSON.stringify(state, null, 2)}\n`);
    };
    publish(state);
    const conflistPath = join(cfg.stateDir, `${cfg.name}.conflist`);
    writeAtomic(conflistPath, `${JSON.stringify(overlayConflist(cfg), null, 2)}\n`);
    log('overlay-leased', { network: cfg.name, subnet, vtepIp: underlay.address, vtepMac: mac, mtu });

    let peers: HostRecord[] = [];
    // one reconcile at a time, always against the latest set
    let latest: HostRecord[] | undefined;
    let running: Promise<void> | undefined;
    const program = (): Promise<void> => {
      running ??= (async () => {
        while (latest) {
          const want = latest;
          latest = undefined;
          try {
            const r = await reconcile(h, cfg, want);
            peers = want;
            log('overlay-programmed', {
              network: cfg.name,
              hosts: want.length,
              added: r.added,
              removed: r.removed,
              peers: want.map((p) => p.subnet).join(' '),
            });
          } catch (e) {
            log('overlay-program-failed', { network: cfg.name, message: (e as Error).message });
          }
        }
        running = undefined;
      })();
      return running;
    };
    // hosts of the other underlay family, each told once (every change of the set reports all hosts again)
    const told = new Set<string>();
    src.start({
      peers(hosts) {
        const { reachable, unreachable } = peersOfFamily(hosts, underlay.family);
        for (const p of unreachable) {
          if (told.has(`${p.node} ${p.vtepIp}`)) continue;
          told.add(`${p.node} ${p.vtepIp}`);
          log('overlay-peer-ignored', {
            network: cfg.name,
            node: p.node,
            vtepIp: p.vtepIp,
            message: `its VTEP is not an IPv${underlay.family} address as this host's is`,
          });
        }
        latest = reachable;
        void program();
      },
      health(error) {
        const { storeError: _, ...rest } = state;
        publish(error ? { ...rest, storeError: error.message } : rest);
        log(error ? 'overlay-store-unreachable' : 'overlay-store-ok', { network: cfg.name, message: error?.message });
      },
      subnet(s) {
        if (s !== state.subnet) {
          publish({ ...state, subnet: s, gateway: nthAddress(s, 1) });
          void setDeviceSubnet(h, cfg, s).catch((e) => log('overlay-program-failed', { network: cfg.name, message: (e as Error).message }));
        }
        log('overlay-released-and-leased', { network: cfg.name, subnet: s });
      },
    });
    return {
      config: cfg,
      get state() {
        return state;
      },
      conflistPath,
      get peers() {
        return peers;
      },
      async close(opts = {}) {
        await src.close(opts);
        await running;
        h.close();
      },
    };
  } catch (e) {
    await src.close().catch(() => undefined);
    h.close();
    throw e;
  }
}
