/**
 * How a mode runs a verb as a list of named steps, like netavark's setup and the reference plugins'
 * `defer if !success`: ADD is all or nothing — each step registers how to undo itself, and when a later step
 * fails the undos run in reverse before the error goes back to the runtime; DEL and GC are best effort —
 * every step runs even when an earlier one failed, and the failures are reported together at the end.
 *
 * Every step is also a timing phase (lib/modes/timing.ts, `NETPLUMB_TIMING=1`) and a fault point
 * (lib/sys/fault.ts, `NETPLUMB_FAULT=<name>` or `kill:<name>` right after it; DEL's and GC's points are
 * `del-<name>` and `gc-<name>`), so the rollback and crash tests can stop a verb between any two steps.
 *
 *   add: (req) => runSteps(req, async (step, undo) => {
 *     const ipam = await step('ipam', () => ipamAdd(req, undo));   // IPAM DEL is now registered
 *     const veth = await step('veth', async () => { … undo.push('delete veth', …); });
 *     return result;
 *   })
 */
import { CniError, toCniError } from '../cni/errors.js';
import { UndoStack, withRollback } from '../cni/rollback.js';
import type { CniRequest } from '../cni/request.js';
import { faultPoint } from '../sys/fault.js';
import { mark } from './timing.js';

export { UndoStack, withRollback };

/** Runs one step: `fn`, then its timing mark and its fault point, both named `name`. */
export type Step = <T>(name: string, fn: () => T | Promise<T>) => Promise<T>;

/** The step runner of a request: fault points as its environment's NETPLUMB_FAULT asks (`prefix` + name). */
export function stepper(req: Pick<CniRequest, 'env'>, prefix = ''): Step {
  const want = req.env.NETPLUMB_FAULT;
  return async (name, fn) => {
    const value = await fn();
    mark(name);
    faultPoint(`${prefix}${name}`, want);
    return value;
  };
}

/** An all-or-nothing verb (ADD): `fn` gets the step runner and the undo stack; a failure unwinds the stack. */
export function runSteps<T>(req: Pick<CniRequest, 'env'>, fn: (step: Step, undo: UndoStack) => Promise<T>): Promise<T> {
  const step = stepper(req);
  return withRollback((undo) => fn(step, undo));
}

/**
 * A best-effort verb (DEL, GC): `step(name, fn)` runs every step even when an earlier one failed, logs each
 * failure on stderr, and `finish()` throws them together — the first failure's code and message, the others
 * in the details.
 */
export class Teardown {
  readonly #failures: unknown[] = [];
  readonly #step: Step;

  /** `label` prefixes the log lines (`netplumb-bridge: DEL c1/eth0`); fault points are `<prefix><name>`. */
  constructor(
    readonly label: string,
    req: Pick<CniRequest, 'env'>,
    prefix: 'del-' | 'gc-',
  ) {
    this.#step = stepper(req, prefix);
  }

  /** Runs `fn` as step `name`; a failure is recorded, not thrown. */
  step(name: string, fn: () => unknown): Promise<void> {
    return this.#step(name, async () => {
      try {
        await fn();
      } catch (e) {
        this.#failures.push(e);
        process.stderr.write(`${this.label}: ${name}: ${e instanceof Error ? e.message : String(e)}\n`);
      }
    });
  }

  /** Throws what failed, if anything did. */
  finish(): void {
    if (this.#failures.length === 0) return;
    const [first, ...rest] = this.#failures;
    if (rest.length === 0) throw first;
    const err = toCniError(first);
    const details = [err.details, ...rest.map((e) => (e instanceof Error ? e.message : String(e)))].filter(Boolean).join('; ');
    throw new CniError(err.cniCode, err.message, { details, op: err.op, object: err.object, cause: first });
  }
}
