/**
 * Link types: what a caller asks to create (LinkConfig), changes (LinkChanges) and what the kernel reports back
 * (Link, narrowed by kind with LinkOf). Specs name other links by LinkRef; what is read back gives indexes.
 * See docs/NET.md for the rest.
 */
import type { Netns, NetnsRef } from './ns.js';
import type { Handle } from './handle.js';

/** A link named by its name or its index. */
export type LinkRef = string | number;

/** Where to put a link: a namespace reference, an open namespace, or a handle on it. */
export type NetnsTarget = NetnsRef | Handle;

/** Attributes every kind accepts at creation. */
export interface LinkCommon {
  name: string;
  mtu?: number;
  /** `aa:bb:cc:dd:ee:ff` */
  mac?: string;
  txqlen?: number;
  /** bring the link up as it is created */
  up?: boolean;
  /** enslave to this bridge as it is created */
  master?: LinkRef;
  alias?: string;
  /** create the link directly in this namespace instead of the handle's */
  netns?: NetnsTarget;
}

export interface VethPeerConfig {
  name: string;
  mac?: string;
  mtu?: number;
  up?: boolean;
  /** create the peer directly in this namespace (a container's), so it never appears in the host's */
  netns?: NetnsTarget;
}

export interface VethConfig extends LinkCommon {
  kind: 'veth';
  peer: VethPeerConfig;
}

export interface BridgeConfig extends LinkCommon {
  kind: 'bridge';
  stp?: boolean;
  /** seconds (the kernel keeps hundredths) */
  forwardDelay?: number;
  /** seconds an FDB entry lives */
  ageingTime?: number;
  vlanFiltering?: boolean;
  priority?: number;
  /** bridged IPv4 and IPv6 traverse the inet netfilter hooks (and conntrack), as with br_netfilter's sysctls, for this bridge only */
  nfCall?: boolean;
}

export type MacvlanMode = 'private' | 'vepa' | 'bridge' | 'passthru' | 'source';
export interface MacvlanConfig extends LinkCommon {
  kind: 'macvlan';
  parent: LinkRef;
  mode?: MacvlanMode;
}

export type IpvlanMode = 'l2' | 'l3' | 'l3s';
export interface IpvlanConfig extends LinkCommon {
  kind: 'ipvlan';
  parent: LinkRef;
  mode?: IpvlanMode;
}

export interface VlanConfig extends LinkCommon {
  kind: 'vlan';
  parent: LinkRef;
  id: number;
  protocol?: '802.1Q' | '802.1ad';
}

/** VXLAN options set at creation and reported back alike. */
export interface VxlanOptions {
  /** outer TOS (`tos`); 1 = inherit */
  tos?: number;
  /** UDP source ports to choose from (`srcport MIN MAX`), inclusive */
  srcPortRange?: [number, number];
  /** answer ARP/NDP from the FDB and neighbour table (`proxy`) */
  proxy?: boolean;
  /** tell userspace of FDB misses (`l2miss`) and neighbour misses (`l3miss`) */
  l2miss?: boolean;
  l3miss?: boolean;
  /** UDP checksums over IPv4 (`udpcsum`) */
  udpCsum?: boolean;
  /** send / accept zero UDP checksums over IPv6 (`udp6zerocsumtx`, `udp6zerocsumrx`) */
  udp6ZeroCsumTx?: boolean;
  udp6ZeroCsumRx?: boolean;
  /** metadata-based (`external`): the remote and VNI come from the route or the eBPF program */
  external?: boolean;
  /** the outer header's don't-fragment bit (`df unset|set|inherit`) */
  df?: VxlanDf;
  /** FDB ageing in seconds (`ageing`) and the most entries (`maxaddress`, 0 = no limit) */
  ageing?: number;
  maxAddresses?: number;
}

export interface VxlanConfig extends LinkCommon, VxlanOptions {
  kind: 'vxlan';
  vni: number;
  /** UDP destination port (default: the kernel's, 8472; 4789 is IANA's) */
  port?: number;
  /** multicast group or (unicast) remote */
  group?: string;
  local?: string;
  /** the link underneath (`dev`), by name or index */
  parent?: LinkRef;
  ttl?: number;
  learning?: boolean;
}

/** The outer header's don't-fragment bit of a VXLAN device. */
export type VxlanDf = 'unset' | 'set' | 'inherit';

export interface DummyConfig extends LinkCommon {
  kind: 'dummy';
}

export type LinkConfig = VethConfig | BridgeConfig | MacvlanConfig | IpvlanConfig | VlanConfig | VxlanConfig | DummyConfig;
export type LinkKind = LinkConfig['kind'];

export type OperState = 'unknown' | 'notpresent' | 'down' | 'lowerlayerdown' | 'testing' | 'dormant' | 'up';

export interface LinkStats {
  rxPackets: number;
  txPackets: number;
  rxBytes: number;
  txBytes: number;
  rxErrors: number;
  txErrors: number;
  rxDropped: number;
  txDropped: number;
  multicast: number;
  collisions: number;
}

/** Bridge port settings (the `bridge link` / `bridge_slave` options). */
export interface BridgePortConfig {
  /** reflect frames back out of the port they came in on (hairpin mode) */
  hairpin?: boolean;
  learning?: boolean;
  /** flood unknown unicast to this port */
  flood?: boolean;
  /** isolated ports talk only to non-isolated ones */
  isolated?: boolean;
  cost?: number;
  priority?: number;
}

export interface BridgePortInfo extends Required<BridgePortConfig> {
  /** STP state: 0 disabled, 1 listening, 2 learning, 3 forwarding, 4 blocking */
  state: number;
}

export interface BridgeInfo {
  stp: boolean;
  forwardDelay: number;
  ageingTime: number;
  vlanFiltering: boolean;
  priority: number;
  /** bridged IPv4 and IPv6 go through the inet netfilter hooks (nf_call_iptables and nf_call_ip6tables both on) */
  nfCall: boolean;
}

export interface VxlanInfo extends VxlanOptions {
  vni: number;
  port?: number;
  group?: string;
  local?: string;
  /** index of the link underneath */
  parentIndex?: number;
  ttl?: number;
  learning?: boolean;
}

/** What every link reports. */
export interface LinkBase {
  index: number;
  name: string;
  /** IFLA_INFO_KIND as the kernel says it (`veth`, `bridge`, …; undefined for lo and plain devices) */
  infoKind: string | undefined;
  /** raw IFF_* flags */
  flags: number;
  /** administratively up (IFF_UP) */
  up: boolean;
  /** carrier (IFF_LOWER_UP) */
  lowerUp: boolean;
  promisc: boolean;
  operstate: OperState;
  mtu: number;
  mac: string | undefined;
  broadcast: string | undefined;
  txqlen: number | undefined;
  /** index of the bridge (or other master) this link is a port of */
  masterIndex: number | undefined;
  alias: string | undefined;
  /** IFLA_LINK: the peer of a veth, the parent of a macvlan/vlan (in the namespace given by linkNetnsId) */
  linkIndex: number | undefined;
  /** the namespace id (as this namespace numbers it) where linkIndex lives, when that is another namespace */
  linkNetnsId: number | undefined;
  /** set when this link is a bridge port */
  bridgePort: BridgePortInfo | undefined;
  stats: LinkStats | undefined;
}

/** A link as the kernel reports it, with kind-specific details discriminated by `kind`. */
export type Link = LinkBase &
  (
    | { kind: 'veth'; peerIndex: number | undefined }
    | { kind: 'bridge'; bridge: BridgeInfo }
    | { kind: 'macvlan'; parentIndex: number | undefined; mode: MacvlanMode | undefined }
    | { kind: 'ipvlan'; parentIndex: number | undefined; mode: IpvlanMode | undefined }
    | { kind: 'vlan'; parentIndex: number | undefined; vlanId: number | undefined; protocol: string | undefined }
    | { kind: 'vxlan'; vxlan: VxlanInfo }
    | { kind: 'dummy' }
    | { kind: 'loopback' }
    /** any other kind (see infoKind), or a plain device */
    | { kind: 'other' }
  );

/** A link of one kind: `LinkOf<'veth'>` has `peerIndex`, `LinkOf<'bridge'>` has `bridge`. */
export type LinkOf<K extends Link['kind']> = Extract<Link, { kind: K }>;
/** What createVethPair resolves with: the side made in the handle's namespace. */
export type VethLink = LinkOf<'veth'>;
/** What ensureBridge resolves with. */
export type BridgeLink = LinkOf<'bridge'>;

/** Changes to an existing link, all made by one request. `null` removes (master, alias). */
export interface LinkChanges {
  up?: boolean;
  mtu?: number;
  mac?: string;
  name?: string;
  master?: LinkRef | null;
  alias?: string | null;
  promisc?: boolean;
  txqlen?: number;
  /** move to this namespace (with `name`, renamed on arrival) */
  netns?: NetnsTarget | { pid: number };
}

export type { Netns };
