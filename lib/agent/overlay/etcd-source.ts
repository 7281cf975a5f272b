/**
 * Subnets leased in etcd, as flannel's etcd backend does: each host's record lives at
 * `<prefix>subnets/<a.b.c.d-len>` under a lease with a TTL, renewed every third of it. A host that stops
 * renewing disappears when the lease expires, and every other host's watch removes it. A restarted host takes
 * its old key back (same node name) or, when the key already expired, asks for the same subnet if still free.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { subnetsOf, type OverlayConfig } from './config.js';
import { EtcdClient, EtcdError, type EtcdKv } from './etcd.js';
import { readEtcdTls } from './etcd-tls.js';
import type { HostRecord, SubnetSource, SubnetSourceEvents } from './subnet-source.js';

const keyOf = (prefix: string, subnet: string) => `${prefix}subnets/${subnet.replace('/', '-')}`;

function recordOf(kv: EtcdKv): HostRecord | undefined {
  try {
    const r = JSON.parse(kv.value);
    if (typeof r.node === 'string' && typeof r.subnet === 'string' && typeof r.vtepIp === 'string' && typeof r.vtepMac === 'string') return r;
  } catch {
    /* someone else's key: not ours to read */
  }
  return undefined;
}

export class EtcdSubnetSource implements SubnetSource {
  readonly #etcd: EtcdClient;
  readonly #cfg: OverlayConfig;
  readonly #stop = new AbortController();
  #lease: string | undefined;
  #subnet: string | undefined;
  #vtep: Pick<HostRecord, 'vtepIp' | 'vtepMac'> | undefined;
  #healthy = true;
  #events: SubnetSourceEvents | undefined;
  #loops: Promise<void>[] = [];

  /** Reads the configuration's TLS files (throwing, before anything happened, when one is wrong). */
  constructor(cfg: OverlayConfig, etcd = new EtcdClient({ endpoints: cfg.etcd.endpoints, tls: readEtcdTls(cfg.etcd) })) {
    this.#cfg = cfg;
    this.#etcd = etcd;
  }

  get healthy(): boolean {
    return this.#healthy;
  }

  #setHealth(error: Error | undefined): void {
    const was = this.#healthy;
    this.#healthy = error === undefined;
    if (was !== this.#healthy || error) this.#events?.health(error);
  }

  async acquire(vtep: Pick<HostRecord, 'vtepIp' | 'vtepMac'>, preferred?: string): Promise<string> {
    this.#vtep = vtep;
    const { prefix } = this.#cfg.etcd;
    const lease = await this.#etcd.grantLease(this.#cfg.ttlSeconds);
    const record = (subnet: string) => JSON.stringify({ node: this.#cfg.node, subnet, ...vtep } satisfies HostRecord);
    const { kvs } = await this.#etcd.getPrefix(`${prefix}subnets/`);
    const taken = new Map<string, EtcdKv>();
    for (const kv of kvs) {
      const r = recordOf(kv);
      if (r) taken.set(r.subnet, kv);
    }
    // 1. our own key, still alive from before a restart: take it over under the new lease
    for (const [subnet, kv] of taken) {
      if (recordOf(kv)!.node === this.#cfg.node && (await this.#etcd.putIf(kv.key, record(subnet), lease, kv.modRevision))) return this.#took(lease, subnet);
    }
    // 2. the subnet we had, if nobody holds it; 3. the first free one
    const candidates = [...(preferred && !taken.has(preferred) ? [preferred] : []), ...subnetsOf(this.#cfg)];
    for (const subnet of candidates) {
      if (taken.has(subnet)) continue;
      if (await this.#etcd.putIf(keyOf(prefix, subnet), record(subnet), lease, 0)) return this.#took(lease, subnet);
    }
    await this.#etcd.revokeLease(lease).catch(() => undefined);
    throw new EtcdError(`etcd: no free /${this.#cfg.subnetPrefix} left in ${this.#cfg.network}`);
  }

  #took(lease: string, subnet: string): string {
    this.#lease = lease;
    this.#subnet = subnet;
    return subnet;
  }

  start(events: SubnetSourceEvents): void {
    this.#events = events;
    this.#loops.push(this.#renew(), this.#watch());
  }

  /** Renews the lease every third of its TTL; a lease found gone (etcd lost it) is taken again. */
  async #renew(): Promise<void> {
    const signal = this.#stop.signal;
    const every = (this.#cfg.ttlSeconds * 1000) / 3;
    while (!signal.aborted) {
      await sleep(every, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) return;
      try {
        const left = this.#lease === undefined ? 0 : await this.#etcd.keepAlive(this.#lease);
        if (left <= 0) {
          const subnet = await this.acquire(this.#vtep!, this.#subnet);
          this.#events?.subnet?.(subnet);
        }
        this.#setHealth(undefined);
      } catch (e) {
        this.#setHealth(e as Error);
      }
    }
  }

  /** Lists the hosts, then follows changes; lists again after any break, with a bounded backoff. */
  async #watch(): Promise<void> {
    const signal = this.#stop.signal;
    const dir = `${this.#cfg.etcd.prefix}subnets/`;
    let backoff = 250;
    while (!signal.aborted) {
      try {
        const { revision } = await this.#report(dir);
        backoff = 250;
        // every batch of changes: read the whole set again (a few dozen keys), so order never matters
        let pending = Promise.resolve();
        await this.#etcd.watchPrefix(
          dir,
          revision + 1,
          () => {
            pending = pending.then(() =>
              this.#report(dir).then(
                () => undefined,
                (e) => this.#setHealth(e as Error),
              ),
            );
          },
          signal,
        );
      } catch (e) {
        if (signal.aborted) return;
        this.#setHealth(e as Error);
        await sleep(backoff, undefined, { signal }).catch(() => undefined);
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  async #report(dir: string): Promise<{ revision: number }> {
    const { kvs, revision } = await this.#etcd.getPrefix(dir);
    this.#setHealth(undefined);
    const peers = kvs.map(recordOf).filter((r): r is HostRecord => r !== undefined && r.node !== this.#cfg.node);
    this.#events?.peers(peers);
    return { revision };
  }

  async close(opts: { release?: boolean } = {}): Promise<void> {
    this.#stop.abort();
    await Promise.allSettled(this.#loops);
    if (opts.release && this.#lease) await this.#etcd.revokeLease(this.#lease).catch(() => undefined);
    this.#etcd.close();
  }
}
