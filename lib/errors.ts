/**
 * The one error family of netplumb. Every error the library throws is a NetplumbError (or a subclass) carrying
 * `code`, `op` and `object`:
 * - a failure the kernel reported keeps its errno name (`EEXIST`, `ENODEV`, `EPERM`) and `errno`;
 * - a condition netplumb itself detects has an `ERR_*` code (Node's convention: `ERR_INVALID_ADDRESS`), so a
 *   caller tells a kernel errno from a library condition by the prefix alone.
 * The codes are listed in docs/ERRORS.md; CNI plugins map them to CNI error codes (lib/cni/errors.ts, docs/CNI.md).
 * A leaf: imports nothing of netplumb.
 */
import { constants as osConstants } from 'node:os';

const errnoNames = new Map<number, string>();
for (const [name, value] of Object.entries(osConstants.errno)) {
  // EWOULDBLOCK aliases EAGAIN and EDEADLOCK aliases EDEADLK: keep the name people grep for.
  if (!errnoNames.has(value)) errnoNames.set(value, name);
}
// ENOTSUP and EOPNOTSUPP are one value on Linux; the kernel's sources (and its messages) say EOPNOTSUPP.
if (osConstants.errno.EOPNOTSUPP !== undefined) errnoNames.set(osConstants.errno.EOPNOTSUPP, 'EOPNOTSUPP');

/** The symbolic name of an errno value (`17` → `EEXIST`), or `E<number>` when unknown. */
export function errnoName(errno: number): string {
  return errnoNames.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
}

/** The errno value of a symbolic name (`EEXIST` → `17`), or undefined. */
export function errnoValue(name: string): number | undefined {
  return (osConstants.errno as Record<string, number>)[name];
}

/** Errno values by name (`ERRNO.ENODEV`), so that no errno is written as a number. */
export const ERRNO = osConstants.errno;

/**
 * netplumb's own error codes: conditions the library detects itself, never an errno. docs/ERRORS.md explains
 * each; the IPAM codes and the CNI codes (`ERR_CNI_<NAME>`) are listed there too.
 */
export const ERR = {
  /** an IP address, prefix or CIDR that does not parse, or of the wrong family */
  INVALID_ADDRESS: 'ERR_INVALID_ADDRESS',
  /** a MAC address that does not parse, or is not a usable unicast address where one is needed */
  INVALID_MAC: 'ERR_INVALID_MAC',
  /** an interface name, namespace name, container ID or network name outside its rules */
  INVALID_NAME: 'ERR_INVALID_NAME',
  /** any other argument out of its range or of the wrong type (a PID, a sysctl key, a firewall spec) */
  INVALID_ARG_VALUE: 'ERR_INVALID_ARG_VALUE',
  /** a namespace target that is the caller's own namespace, where another was meant */
  NETNS_SELF: 'ERR_NETNS_SELF',
  /** a file that is not a network namespace where one was expected (nothing mounted on a /run/netns file) */
  NOT_A_NETNS: 'ERR_NOT_A_NETNS',
  /** a Netns whose file descriptor was already closed */
  NETNS_CLOSED: 'ERR_NETNS_CLOSED',
  /** a named namespace file on which no namespace is mounted */
  NETNS_NOT_MOUNTED: 'ERR_NETNS_NOT_MOUNTED',
  /** a request on a netlink socket (or handle) that was closed */
  SOCKET_CLOSED: 'ERR_SOCKET_CLOSED',
  /** the kernel acknowledged a request without the answer it always gives */
  NO_REPLY: 'ERR_NO_REPLY',
  /** a wait for a condition ended at its time limit */
  TIMEOUT: 'ERR_TIMEOUT',
  /** an event subscription ended before the awaited event */
  WATCH_CLOSED: 'ERR_WATCH_CLOSED',
  /** a link exists under the wanted name but is of another kind */
  LINK_KIND: 'ERR_LINK_KIND',
  /** a function given to a namespace window returned a promise (it must be synchronous) */
  NOT_SYNCHRONOUS: 'ERR_NOT_SYNCHRONOUS',
  /** a fault point fired (NETPLUMB_FAULT, for crash tests) */
  FAULT_INJECTED: 'ERR_FAULT_INJECTED',
  /** a state record or store entry that netplumb would not have written */
  MALFORMED_STATE: 'ERR_MALFORMED_STATE',
  /** a published host port is held by another attachment */
  HOST_PORT_IN_USE: 'ERR_HOST_PORT_IN_USE',
  /** nft refused a command without an errno (a syntax error); FirewallError.nftError has its text */
  NFT: 'ERR_NFT',
  /** a thing netplumb keeps or was pointed at does not exist: a network, an endpoint, a remembered name, a process */
  NOT_FOUND: 'ERR_NOT_FOUND',
  /** a name netplumb keeps is taken already: a network's, a namespace's remembered name */
  EXISTS: 'ERR_EXISTS',
  /** a resource is held by something else: a subnet or bridge of another network, a network with endpoints */
  IN_USE: 'ERR_IN_USE',
  /** a path netplumb must trust is a symbolic link, another kind of file, or another user's */
  UNSAFE_PATH: 'ERR_UNSAFE_PATH',
  /** no free subnet is left in the pool new networks take theirs from */
  NO_FREE_SUBNET: 'ERR_NO_FREE_SUBNET',
  /** a request or input larger than its limit */
  TOO_LARGE: 'ERR_TOO_LARGE',
  /** netplumbd will not serve this caller (other namespaces, fewer capabilities): act in process */
  MISDIRECTED: 'ERR_MISDIRECTED',
  /** netplumbd refused or failed a request without a code of its own (its HTTP status and message tell) */
  AGENT: 'ERR_AGENT',
  /** a command failed without an errno: a helper program netplumb ran, or a `netplumb` command's own refusal */
  COMMAND_FAILED: 'ERR_COMMAND_FAILED',
  /** etcd did not answer, or answered other than asked (the overlay's coordination store) */
  ETCD: 'ERR_ETCD',
} as const;

export type ErrCode = (typeof ERR)[keyof typeof ERR];

/** The capabilities netplumb's operations need; a permission failure names the one it lacked. */
export type Capability = 'CAP_NET_ADMIN' | 'CAP_SYS_ADMIN' | 'CAP_NET_RAW';

/**
 * The capability an operation needs: entering or mounting namespaces is CAP_SYS_ADMIN; changing links,
 * addresses, routes, sysctls and nftables is CAP_NET_ADMIN; a packet socket is CAP_NET_RAW.
 */
export function capabilityFor(op: string): Capability | undefined {
  if (/^(setns|unshare|mount|umount2?|netns (add|attach|delete))\b/.test(op)) return 'CAP_SYS_ADMIN';
  if (/^(RTM_|RTNLGRP|sysctl|nft)/.test(op)) return 'CAP_NET_ADMIN';
  if (/^(garp|packet)/.test(op)) return 'CAP_NET_RAW';
  return undefined;
}

export interface NetplumbErrorInit {
  /** errno name such as `EEXIST`, or a netplumb code such as `ERR_INVALID_ADDRESS` */
  code: string;
  /** what was being done: `setns`, `RTM_NEWLINK`, `addAddress`, … */
  op: string;
  /** what it was done to: a link name, a path, an address */
  object?: string | undefined;
  /** numeric errno when the failure came from the kernel */
  errno?: number | undefined;
  cause?: unknown;
}

/**
 * Root of netplumb's error family. Every error carries the errno name or netplumb code (`code`), the
 * operation and the object, so callers can branch on `e.code === 'EEXIST'` without parsing messages. A
 * permission failure (EPERM, EACCES) names the capability it lacked in `capability` and in its message.
 */
export class NetplumbError extends Error {
  readonly code: string;
  readonly op: string;
  readonly object: string | undefined;
  readonly errno: number | undefined;
  readonly capability: Capability | undefined;

  constructor(message: string, init: NetplumbErrorInit) {
    const denied = init.code === 'EPERM' || init.code === 'EACCES';
    const capability = denied ? capabilityFor(init.op) : undefined;
    const needs = capability === undefined || message.includes(capability) ? '' : ` (needs ${capability})`;
    super(message + needs, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.code = init.code;
    this.op = init.op;
    this.object = init.object;
    this.errno = init.errno;
    this.capability = capability ?? (init.cause instanceof NetplumbError ? init.cause.capability : undefined);
  }
}

/** A failed system call (setns, mount, flock, …). */
export class SyscallError extends NetplumbError {
  constructor(op: string, errno: number, object?: string) {
    const code = errnoName(errno);
    super(`${op}${object === undefined ? '' : ` ${object}`}: ${code}`, { code, op, object, errno });
  }
}

/** What a compound operation was doing, for the error of a step inside it. */
export interface ErrorContext {
  /** the compound operation: `addAddress`, `addRoute`, … */
  op: string;
  /** a phrase: `add address 10.0.0.2/24 to eth9` */
  what: string;
  object?: string | undefined;
}

/**
 * The error of a step, said as a failure of the compound operation it served (netavark's `.wrap()`): the
 * message starts with `what`, `op` and `object` are the compound's, `code` and `errno` stay the step's, and the
 * step's own error is the `cause`.
 */
export function wrapError(e: unknown, ctx: ErrorContext): NetplumbError {
  const inner = e instanceof NetplumbError ? e : undefined;
  const message = e instanceof Error ? e.message : String(e);
  return new NetplumbError(`${ctx.what}: ${message}`, {
    code: inner?.code ?? (typeof (e as { code?: unknown })?.code === 'string' ? (e as { code: string }).code : ERR.INVALID_ARG_VALUE),
    op: ctx.op,
    object: ctx.object ?? inner?.object,
    errno: inner?.errno,
    cause: e,
  });
}

/** Awaits `step`; its failure becomes a failure of the compound operation `ctx` (see wrapError). */
export async function during<T>(ctx: ErrorContext, step: Promise<T>): Promise<T> {
  try {
    return await step;
  } catch (e) {
    throw wrapError(e, ctx);
  }
}
