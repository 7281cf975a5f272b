/**
 * netplumb's public API. The package's entry (`exports["."]`) is dist/lib/index.bundle.js: this module and
 * everything it imports in one ES module, written by scripts/write-plugin-bins.mjs, so that a program importing
 * `netplumb` loads one file rather than some thirty (types still come from here). Each module can also be
 * imported on its own (`dist/lib/net/link.js`) by programs that must load little, such as the CNI plugins.
 * How to use it: docs/NET.md.
 */
export {
  NetplumbError,
  SyscallError,
  ERR,
  ERRNO,
  errnoName,
  errnoValue,
  wrapError,
  during,
  capabilityFor,
  type ErrCode,
  type Capability,
  type ErrorContext,
} from './errors.js';
export * from './addr/index.js';
export {
  ifnameProblem,
  isValidIfname,
  isValidContainerId,
  isValidNetworkName,
  isValidNetnsName,
  MAX_IFNAME_BYTES,
  MAX_CONTAINER_ID_BYTES,
  MAX_NETWORK_NAME_BYTES,
} from './names.js';
export { NetlinkError, type RequestInfo } from './netlink/errors.js';
export {
  Netns,
  NETNS_RUN_DIR,
  openNetnsSync,
  currentNetnsSync,
  currentNetnsIdSync,
  isSameNetnsSync,
  netnsPath,
  createNamedNetnsSync,
  deleteNamedNetnsSync,
  listNamedNetnsSync,
  attachNetnsSync,
  removeStaleNetnsSync,
  waitForOwnNetns,
  type WaitForOwnNetnsOptions,
  type NetnsRef,
  type OpenNetnsOptions,
  type NamedNetns,
  type AttachOptions,
} from './net/ns.js';
export { Handle, openHandle, openHandleSync, type OpenHandleOptions } from './net/handle.js';
export { getNetnsId, setNetnsId } from './net/nsid.js';
export {
  listLinks,
  getLink,
  findLink,
  linkIndex,
  createLink,
  createVethPair,
  deleteLink,
  setLink,
  setLinkUp,
  setLinkDown,
  setLinkMtu,
  setLinkMac,
  renameLink,
  setLinkMaster,
  setLinkNoMaster,
  setLinkAlias,
  setLinkPromisc,
  moveLink,
  setBridgePort,
  setHairpin,
  parseLink,
} from './net/link.js';
export type * from './net/link-types.js';
export { ensureBridge, type EnsureBridgeOptions } from './net/bridge.js';
export {
  addAddress,
  replaceAddress,
  deleteAddress,
  listAddresses,
  flushAddresses,
  type Address,
  type AddressSpec,
  type AddressOptions,
  type Scope,
} from './net/addr.js';
export {
  addRoute,
  replaceRoute,
  deleteRoute,
  listRoutes,
  getRoute,
  type Route,
  type RouteSpec,
  type RouteQuery,
  type RouteType,
  type NextHop,
} from './net/route.js';
export { addRule, deleteRule, listRules, type Rule, type RuleSpec, type RuleAction } from './net/rule.js';
export { addNeighbour, replaceNeighbour, deleteNeighbour, listNeighbours, type Neighbour, type NeighbourSpec, type NeighState } from './net/neigh.js';
export { addFdbEntry, appendFdbEntry, replaceFdbEntry, deleteFdbEntry, listFdb, type FdbEntry, type FdbSpec, type FdbState } from './net/fdb.js';
export { sendGratuitousArp, probeArp, type GratuitousArpSpec, type ArpProbeSpec } from './net/garp.js';
export {
  readSysctlSync,
  writeSysctlSync,
  setIpForwardSync,
  getIpForwardSync,
  setAcceptRaSync,
  setDisableIpv6Sync,
  setRpFilterSync,
  setRouteLocalnetSync,
  setArpNotifySync,
  setAcceptDadSync,
  setArpAcceptSync,
} from './net/sysctl.js';
export { watch, waitForOperUp, type NetEvent, type Watch, type WatchOptions } from './net/events.js';
export { batch, batchSettled, type BatchOptions } from './net/batch.js';
