/**
 * netplumb's error family: NetplumbError (code, op, object) and SyscallError, and errno names both ways.
 * See docs/NET.md for the rest.
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

export interface NetplumbErrorInit {
  /** errno name such as `EEXIST`, or a netplumb code such as `ENETNS_SELF` */
  code: string;
  /** what was being done: `setns`, `RTM_NEWLINK`, `flock`, … */
  op: string;
  /** what it was done to: a link name, a path, an address */
  object?: string | undefined;
  /** numeric errno when the failure came from the kernel */
  errno?: number | undefined;
  cause?: unknown;
}

/**
 * Root of netplumb's error family. Every error carries the errno name (`code`), the operation and the
 * object, so callers can branch on `e.code === 'EEXIST'` without parsing messages.
 */
export class NetplumbError extends Error {
  readonly code: string;
  readonly op: string;
  readonly object: string | undefined;
  readonly errno: number | undefined;

  constructor(message: string, init: NetplumbErrorInit) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.code = init.code;
    this.op = init.op;
    this.object = init.object;
    this.errno = init.errno;
  }
}

/** A failed system call (setns, mount, flock, …). */
export class SyscallError extends NetplumbError {
  constructor(op: string, errno: number, object?: string) {
    const code = errnoName(errno);
    super(`${op}${object === undefined ? '' : ` ${object}`}: ${code}`, { code, op, object, errno });
  }
}
