/**
 * The names that reach the file system or a store file: network names (a directory), container IDs and
 * interface names (a file's content). The rules are the CNI spec's (libcni's), and they are what keeps a
 * name from leaving its directory: no `/`, no leading `.`, no whitespace or line breaks.
 */

const ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** CNI_CONTAINERID: an alphanumeric, then alphanumerics, `_`, `.` or `-`. */
export function isValidContainerId(id: string): boolean {
  return typeof id === 'string' && ID.test(id);
}

/** A network name as libcni accepts it (same alphabet as container IDs): safe as one path component. */
export function isValidNetworkName(name: string): boolean {
  return typeof name === 'string' && ID.test(name);
}

/**
 * Why CNI_IFNAME is invalid, or undefined when it is fine: not empty, at most 15 bytes (IFNAMSIZ − 1),
 * not `.` or `..`, no `/`, `:` or whitespace.
 */
export function ifnameProblem(ifname: string): string | undefined {
  if (typeof ifname !== 'string' || ifname === '') return 'is empty';
  if (Buffer.byteLength(ifname) > 15) return `is longer than 15 bytes (${Buffer.byteLength(ifname)})`;
  if (ifname === '.' || ifname === '..') return `may not be "${ifname}"`;
  if (/[/:]/.test(ifname)) return 'may not contain "/" or ":"';
  if (/\s/u.test(ifname)) return 'may not contain whitespace';
  if (ifname.includes('\0')) return 'may not contain NUL';
  return undefined;
}

export function isValidIfname(ifname: string): boolean {
  return ifnameProblem(ifname) === undefined;
}
