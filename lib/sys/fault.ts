/**
 * Fault points, for the rollback and crash-safety tests and nothing else:
 *
 *   NETPLUMB_FAULT=<point>        the process throws right after <point> (a failure: ADD rolls back)
 *   NETPLUMB_FAULT=kill:<point>   the process kills itself with SIGKILL right there (a crash: no undo,
 *                                 no finally, no exit handler, no buffered write flushed)
 *
 * Points are named after what has just happened (`veth`: the veth pair exists; `ipam-open`: an IPAM
 * temporary file was created and is still empty …; docs/SECURITY.md lists them). The modes pass one after
 * each step of a verb (lib/modes/steps.ts); lower layers place their own. Without the variable
 * (production) a point costs one string comparison against a value read once.
 */
import { ERR, NetplumbError } from '../errors.js';

const configured = process.env.NETPLUMB_FAULT ?? '';

/** Thrown at a fault point in its throwing form; the message names the point. */
export class InjectedFault extends NetplumbError {
  constructor(point: string) {
    super(`fault injected after step "${point}" (NETPLUMB_FAULT)`, { code: ERR.FAULT_INJECTED, op: 'fault point', object: point });
  }
}

/**
 * Fails or crashes here if NETPLUMB_FAULT names `point`. `want` overrides the environment (a plugin passes
 * its request's environment, which is the process's own).
 */
export function faultPoint(point: string, want: string | undefined = configured): void {
  if (want === undefined || want === '') return;
  if (want === `kill:${point}`) {
    // SIGKILL cannot be caught: exactly what a crash, an OOM kill or a runtime's timeout does to a plugin.
    process.kill(process.pid, 'SIGKILL');
    // A fatal signal to oneself takes effect before kill(2) returns to user space; should it not, fail.
  }
  if (want === point) throw new InjectedFault(point);
}
