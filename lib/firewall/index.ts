/**
 * netplumb's nftables firewall for bridge networks: masquerade, published ports (with hairpin and
 * 127.0.0.1), isolation between bridges and MAC/IP spoof checks, in tables of its own (`inet netplumb`,
 * `bridge netplumb`), one transaction per operation. See docs/FIREWALL.md for the layout and how the bridge
 * plugin uses it.
 */
export {
  addContainerRules,
  checkContainerRules,
  deleteFirewall,
  ensureNetworkFirewall,
  gcFirewall,
  listContainerRules,
  removeContainerRules,
  removeNetworkFirewall,
  gcBridgeFirewall,
  listAllowElements,
  setAllowRules,
  type AttachmentRef,
  type ContainerFirewall,
  type FirewallAttachment,
  type NetworkFirewall,
  type PortMapping,
} from './firewall.js';
export { FirewallError, libnftablesAvailable, type FirewallOptions, type NftBackendName } from './nft.js';
export { MAX_POLICY_ELEMENTS, type AllowRule, type PolicyProtocol } from './policy.js';
export { attachmentTag, TABLE as FIREWALL_TABLE } from './layout.js';
