/**
 * netplumb's IPAM: a drop-in for the reference host-local plugin — same configuration, same on-disk store
 * (shareable with the reference plugin at the same time), crash-safe writes, garbage collection.
 * See docs/CNI.md for the rest.
 */
export { parseIpamConfig, parseRange, parseRangeSet, DEFAULT_DATA_DIR, type IpamConfig, type IpamRoute, type ParseOptions } from './config.js';
export { allocate, release, lookup, gc, status, type Attachment, type AllocatedIp, type StoreRef, type RangeSetStatus } from './allocator.js';
export { Store, StoreTx, rememberStores, parseOwner, formatOwner, type Owner, type StoreEntry, type EntryKind, type LockOptions } from './store.js';
export { IpamError, type IpamCode } from './errors.js';
export { candidates, rangeContains, rangeFor, rangeSetSize, rangeSetText, rangeText, type Range, type RangeSet } from './range.js';
export { parseResolvConf, readResolvConf, type Dns } from './resolv.js';
