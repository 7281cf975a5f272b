/**
 * Where a host's subnet and the other hosts come from. The overlay's data plane does not care whether the
 * answer is an etcd lease (EtcdSubnetSource) or, later, a Kubernetes Node's `spec.podCIDR` watched through the
 * API server: either way the host gets one subnet, publishes its tunnel endpoint (VTEP) and learns the others'.
 */

/** One host of the overlay as the others see it. */
export interface HostRecord {
  node: string;
  /** the host's subnet, `10.244.3.0/24` */
  subnet: string;
  /** the underlay address VXLAN packets for this host go to */
  vtepIp: string;
  /** the MAC of the host's VXLAN device */
  vtepMac: string;
}

/** What a SubnetSource tells its consumer. */
export interface SubnetSourceEvents {
  /** the complete set of other hosts, each time it changes (the first call: as it is now) */
  peers(hosts: HostRecord[]): void;
  /** the source could not reach its store, or can again (`error` undefined); the data plane keeps what it has */
  health(error: Error | undefined): void;
  /** this host's subnet was lost and taken again (the same, unless another host took it meanwhile) */
  subnet?(subnet: string): void;
}

/** A provider of this host's subnet and of the other hosts. */
export interface SubnetSource {
  /**
   * Takes this host's subnet (the one it had before while still free) and publishes `vtep` with it; keeps it
   * (renewing whatever the source needs renewed) until close. Rejects when the store cannot be reached.
   */
  acquire(vtep: Pick<HostRecord, 'vtepIp' | 'vtepMac'>, preferred?: string): Promise<string>;
  /** Starts reporting the other hosts (and its own health) to `events` until close. */
  start(events: SubnetSourceEvents): void;
  /** Whether the store answered last time it was asked. */
  readonly healthy: boolean;
  /** Stops renewing and watching; with `release`, gives the subnet back at once instead of letting it expire. */
  close(opts?: { release?: boolean }): Promise<void>;
}
