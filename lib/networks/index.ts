/** Defined networks (`netplumb network …`, `connect`, `disconnect`): definitions on disk and endpoints attached by CNI ADD in process. */
export {
  createNetwork, listNetworks, getNetwork, readNetwork, bridgeConfig, checkNetworkName, stateRoot, DEFAULT_STATE_ROOT, STATE_ROOT_ENV,
  type Network, type NetworkSpec, type StoreOptions,
} from './store.js';
export {
  connect, disconnect, inspectNetwork, removeNetwork, pruneNetwork, listEndpoints, parseTarget, formatTarget, resolveTarget,
  rememberName, forgetName, isLive, containerIdOf,
  type Target, type Endpoint, type PublishedPort, type ConnectOptions, type NetworkInspect, type ResolvedTarget,
} from './endpoints.js';
