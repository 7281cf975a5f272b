/**
 * CNI errors: the spec's well-known codes, netplumb's plugin-specific codes (≥ 100, documented in
 * docs/CNI.md), the CniError class, and the mapping from any thrown value to the error JSON a runtime
 * reads on stdout.
 */
import { ERR, NetplumbError } from '../errors.js';

/**
 * Every CNI error code netplumb prints, in one registry (docs/CNI.md lists them with their meaning). 0–99 are
 * the spec's; plugin-specific codes start at 100: 100–109 IPAM, delegation and privilege (lib/cni, lib/ipam),
 * 110–119 netplumb-bridge, 120–129 netplumb-none, -host and -container; 999 is libcni's "internal error" (any
 * other failure).
 */
export const CNI_ERR = {
  // the spec's well-known codes
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENVIRONMENT: 4,
  IO_FAILURE: 5,
  DECODING_FAILURE: 6,
  INVALID_NETWORK_CONFIG: 7,
  INVALID_NETNS: 8,
  TRY_AGAIN_LATER: 11,
  NOT_AVAILABLE: 50,
  NOT_AVAILABLE_LIMITED: 51,
  // IPAM, delegation, privilege
  IPAM_EXHAUSTED: 100,
  IPAM_ADDRESS_UNAVAILABLE: 101,
  IPAM_ALREADY_ALLOCATED: 102,
  IPAM_NOT_ALLOCATED: 103,
  PLUGIN_NOT_FOUND: 104,
  DELEGATE_FAILED: 105,
  UNSAFE_STATE: 106,
  NOT_PERMITTED: 107,
  // netplumb-bridge (docs/BRIDGE.md)
  /** the bridge name is taken by another kind of link, or the bridge has a conflicting address */
  BRIDGE_CONFLICT: 110,
  /** the attachment exists already (host veth name or CNI_IFNAME taken in the container) */
  ATTACHMENT_EXISTS: 111,
  /** netplumb-bridge CHECK found drift (every difference is listed in msg) */
  BRIDGE_CHECK_FAILED: 112,
  /** the host end of the veth did not come up in time */
  PORT_NOT_UP: 113,
  /** a published host port belongs to another attachment */
  HOST_PORT_IN_USE: 114,
  // netplumb-none, -host and -container (docs/MODES.md)
  /** CHECK found drift: loopback down or without its addresses; a joined namespace that is no longer the target's */
  CHECK_FAILED: 120,
  /** netplumb-container: this attachment already joined another container */
  ALREADY_JOINED: 121,
  // anything else
  INTERNAL: 999,
} as const;

export type CniCode = (typeof CNI_ERR)[keyof typeof CNI_ERR];

const NAMES = new Map<number, string>(Object.entries(CNI_ERR).map(([k, v]) => [v, k] as [number, string]));

/** The symbolic name of a CNI error code (`7` → `INVALID_NETWORK_CONFIG`). */
export function cniCodeName(code: number): string {
  return NAMES.get(code) ?? `CODE_${code}`;
}

/** The error JSON of the spec: `{cniVersion, code, msg, details}`. */
export interface CniErrorJson {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

export interface CniErrorInit {
  details?: string | undefined;
  op?: string | undefined;
  object?: string | undefined;
  cause?: unknown;
}

/**
 * A failure to report to the runtime with a CNI error code. `code` (NetplumbError's) is `ERR_CNI_<NAME>`,
 * `cniCode` the number printed in the error JSON.
 */
export class CniError extends NetplumbError {
  readonly cniCode: number;
  readonly details: string | undefined;

  constructor(cniCode: number, msg: string, init: CniErrorInit = {}) {
    super(msg, { code: `ERR_CNI_${cniCodeName(cniCode)}`, op: init.op ?? 'cni', object: init.object, cause: init.cause });
    this.cniCode = cniCode;
    this.details = init.details;
  }

  toJSON(cniVersion: string): CniErrorJson {
    const j: CniErrorJson = { cniVersion, code: this.cniCode, msg: this.message };
    if (this.details !== undefined && this.details !== '') j.details = this.details;
    return j;
  }
}

/** Error code 2, naming the key and the value as the spec asks. */
export function unsupportedField(key: string, value: unknown, why?: string): CniError {
  const v = JSON.stringify(value) ?? String(value);
  return new CniError(CNI_ERR.UNSUPPORTED_FIELD, `unsupported field "${key}": ${v}${why ? ` (${why})` : ''}`, {
    object: key,
    details: `${key}=${v}`,
  });
}

/** Error code 4, naming the variables. */
export function invalidEnv(vars: readonly string[], msg: string): CniError {
  return new CniError(CNI_ERR.INVALID_ENVIRONMENT, msg, { object: vars.join(','), details: vars.join(',') });
}

export function invalidConfig(msg: string, object?: string, cause?: unknown): CniError {
  return new CniError(CNI_ERR.INVALID_NETWORK_CONFIG, msg, { object, cause });
}

/** netplumb's own codes (lib/errors.ts ERR, lib/ipam IpamError) → CNI codes; the rest are 999. */
const BY_NETPLUMB_CODE: Record<string, number> = {
  ERR_IPAM_CONFIG: CNI_ERR.INVALID_NETWORK_CONFIG,
  ERR_IPAM_EXHAUSTED: CNI_ERR.IPAM_EXHAUSTED,
  ERR_IPAM_UNAVAILABLE: CNI_ERR.IPAM_ADDRESS_UNAVAILABLE,
  ERR_IPAM_DUPLICATE: CNI_ERR.IPAM_ALREADY_ALLOCATED,
  ERR_IPAM_NOT_ALLOCATED: CNI_ERR.IPAM_NOT_ALLOCATED,
  ERR_IPAM_UNSAFE_STORE: CNI_ERR.UNSAFE_STATE,
  ERR_IPAM_BUSY: CNI_ERR.TRY_AGAIN_LATER,
  [ERR.INVALID_ADDRESS]: CNI_ERR.INVALID_NETWORK_CONFIG,
  [ERR.INVALID_MAC]: CNI_ERR.INVALID_NETWORK_CONFIG,
  [ERR.INVALID_NAME]: CNI_ERR.INVALID_NETWORK_CONFIG,
  [ERR.NETNS_SELF]: CNI_ERR.INVALID_NETNS,
  [ERR.MALFORMED_STATE]: CNI_ERR.UNSAFE_STATE,
};

/** What an EPERM means for a plugin, said where the runtime's user reads it. */
export const PRIVILEGE_HINT =
  'not permitted: netplumb needs CAP_NET_ADMIN and CAP_SYS_ADMIN over the network namespaces it changes; they are missing, or the namespace belongs to a user namespace the plugin has no privilege in';

/** errno names that mean "try again" rather than "broken". */
const TRANSIENT = new Set(['EAGAIN', 'EBUSY', 'EINTR', 'ETXTBSY', 'ENOBUFS']);
/** errno names of file-system failures (disk full, read-only, permission, missing file, device errors …). */
const IO = new Set(['EIO', 'ENOSPC', 'EROFS', 'EACCES', 'EDQUOT', 'EMFILE', 'ENFILE', 'ENOENT', 'ENOTDIR', 'EISDIR', 'ELOOP', 'EFBIG', 'ENAMETOOLONG']);

/**
 * Any thrown value → a CniError: CniError as is; netplumb codes mapped (docs/CNI.md); transient errno
 * errors to 11, EPERM to 107, file-system errno errors to 5; anything else INTERNAL (999) with its message.
 */
export function toCniError(e: unknown): CniError {
  if (e instanceof CniError) return e;
  const code = (e as { code?: unknown } | null)?.code;
  const message = e instanceof Error ? e.message : String(e);
  if (typeof code === 'string') {
    const mapped = BY_NETPLUMB_CODE[code];
    const object = (e as { object?: string }).object;
    if (mapped !== undefined) return new CniError(mapped, message, { cause: e, object });
    if (TRANSIENT.has(code)) return new CniError(CNI_ERR.TRY_AGAIN_LATER, message, { cause: e, object });
    if (code === 'EPERM') return new CniError(CNI_ERR.NOT_PERMITTED, `${message} (${PRIVILEGE_HINT})`, { cause: e, object });
    if (IO.has(code)) return new CniError(CNI_ERR.IO_FAILURE, message, { cause: e, object });
  }
  return new CniError(CNI_ERR.INTERNAL, message, { cause: e });
}
