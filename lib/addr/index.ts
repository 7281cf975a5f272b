/** The address leaf: IP addresses, prefixes and MACs (ip.ts, mac.ts). Imports only lib/errors. */
export * from './ip.js';
export * from './mac.js';
