/**
 * The rules for names netplumb accepts from outside: interface names (the kernel's, plus printable ASCII),
 * namespace names (iproute2's), container IDs and network names (the CNI spec's, as libcni validates them,
 * with length limits). These names reach the file system, store files, link aliases and nftables rules; the
 * rules are what keeps a name from leaving its directory: no `/`, no leading `.`, no whitespace or line breaks.
 * A leaf: imports nothing of netplumb.
 */

const ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/**
 * Length limits libcni does not have. Runtimes use 64 hex digits for container IDs and short network names;
 * unbounded ones fail late and obscurely: a path component longer than 255 bytes (ENAMETOOLONG), a link alias
 * longer than 255 bytes (`netplumb net=<network> if=<ifname> id=<containerID>`: 13 + 64 + 4 + 15 + 4 + 128 =
 * 228 at most with these limits; the kernel answers ERANGE beyond).
 */
export const MAX_CONTAINER_ID_BYTES = 128;
export const MAX_NETWORK_NAME_BYTES = 64;

/** The longest interface name the kernel takes (IFNAMSIZ − 1). */
export const MAX_IFNAME_BYTES = 15;

/** CNI_CONTAINERID: an alphanumeric, then alphanumerics, `_`, `.` or `-`; at most 128 characters. */
export function isValidContainerId(id: string): boolean {
  return typeof id === 'string' && id.length <= MAX_CONTAINER_ID_BYTES && ID.test(id);
}

/** A network name as libcni accepts it (same alphabet as container IDs), at most 64 characters: safe as one path component. */
export function isValidNetworkName(name: string): boolean {
  return typeof name === 'string' && name.length <= MAX_NETWORK_NAME_BYTES && ID.test(name);
}

/**
 * Why an interface name is invalid, or undefined when it is fine: not empty, at most 15 bytes (IFNAMSIZ − 1),
 * not `.` or `..`, no `/`, `:` or whitespace (the kernel's dev_valid_name), printable ASCII only.
 */
export function ifnameProblem(ifname: string): string | undefined {
  if (typeof ifname !== 'string' || ifname === '') return 'is empty';
  if (Buffer.byteLength(ifname) > MAX_IFNAME_BYTES) return `is longer than ${MAX_IFNAME_BYTES} bytes (${Buffer.byteLength(ifname)})`;
  if (ifname === '.' || ifname === '..') return `may not be "${ifname}"`;
  if (/[/:]/.test(ifname)) return 'may not contain "/" or ":"';
  if (/\s/u.test(ifname)) return 'may not contain whitespace';
  // The kernel takes any other byte, but a control character or a look-alike letter ends up in logs, store
  // files, link aliases and nftables rules where it misleads or breaks the reader (iproute2's JSON, for one)
  if (/[^\x21-\x7e]/.test(ifname)) return 'may contain only printable ASCII characters';
  return undefined;
}

/** Whether `ifname` passes ifnameProblem. */
export function isValidIfname(ifname: string): boolean {
  return ifnameProblem(ifname) === undefined;
}

/** Whether `name` can name a namespace file in /var/run/netns, as `ip netns add` checks: one path component. */
export function isValidNetnsName(name: string): boolean {
  return typeof name === 'string' && name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
}
