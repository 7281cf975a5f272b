/**
 * CNI errors: the spec's well-known codes, netplumb's plugin-specific codes (≥ 100, documented in
 * docs/CNI.md), the CniError class, and the mapping from any thrown value to the error JSON a runtime
 * reads on stdout.
 */
import { NetplumbError } from '../errors.js';

/** The spec's well-known error codes (0–99 are reserved by the spec). */
export const CNI_ERR = {
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
} as const;

/** netplumb's plugin-specific codes. 999 is libcni's "internal error" (any other failure). */
export const NETPLUMB_ERR = {
  IPAM_EXHAUSTED: 100,
  IPAM_ADDRESS_UNAVAILABLE: 101,
  IPAM_ALREADY_ALLOCATED: 102,
  IPAM_NOT_ALLOCATED: 103,
  PLUGIN_NOT_FOUND: 104,
  DELEGATE_FAILED: 105,
  UNSAFE_STATE: 106,
  NOT_PERMITTED: 107,
  INTERNAL: 999,
} as const;

const NAMES = new Map<number, string>(
  [...Object.entries(CNI_ERR), ...Object.entries(NETPLUMB_ERR)].map(([k, v]) => [v, k] as [number, string]),
);

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
 * A failure to report to the runtime with a CNI error code. `code` (NetplumbError's) is `CNI_<NAME>`,
 * `cniCode` the number printed in the error JSON.
 */
export class CniError extends NetplumbError {
  readonly cniCode: number;
  readonly details: string | undefined;

  constructor(cniCode: number, msg: string, init: CniErrorInit = {}) {
    super(msg, { code: `CNI_${cniCodeName(cniCode)}`, op: init.op ?? 'cni', object: init.object, cause: init.cause });
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

/** netplumb codes of lib/ipam (IpamError) and friends → CNI codes. */
const BY_NETPLUMB_CODE: Record<string, number> = {
  IPAM_CONFIG: CNI_ERR.INVALID_NETWORK_CONFIG,
  IPAM_EXHAUSTED: NETPLUMB_ERR.IPAM_EXHAUSTED,
  IPAM_UNAVAILABLE: NETPLUMB_ERR.IPAM_ADDRESS_UNAVAILABLE,
  IPAM_DUPLICATE: NETPLUMB_ERR.IPAM_ALREADY_ALLOCATED,
  IPAM_NOT_ALLOCATED: NETPLUMB_ERR.IPAM_NOT_ALLOCATED,
  IPAM_UNSAFE_STORE: NETPLUMB_ERR.UNSAFE_STATE,
  IPAM_BUSY: CNI_ERR.TRY_AGAIN_LATER,
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
 * errors to 11, file-system errno errors to 5; anything else 999 with its message.
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
    if (code === 'EPERM') return new CniError(NETPLUMB_ERR.NOT_PERMITTED, `${message} (${PRIVILEGE_HINT})`, { cause: e, object });
    if (IO.has(code)) return new CniError(CNI_ERR.IO_FAILURE, message, { cause: e, object });
  }
  return new CniError(NETPLUMB_ERR.INTERNAL, message, { cause: e });
}
