/**
 * IPAM for main plugins: delegate every verb to the plugin named by `ipam.type` (executed from CNI_PATH,
 * or netplumb-host-local in process), and make ADD all or nothing with an undo stack: a step that
 * succeeded registers how to undo itself; when a later step fails, the undos run in reverse (IPAM ADD's
 * undo is IPAM DEL) before the error goes back to the runtime.
 *
 *   add: (req) => withRollback(async (undo) => {
 *     const ipam = await ipamAdd(req, undo);      // IPAM DEL is now registered
 *     await createVeth(...); undo.push('delete veth', () => deleteVeth(...));
 *     return { ...ipam, interfaces: [...] };
 *   })
 */
import { delegate, validatePluginType, type DelegateOptions } from './delegate.js';
import { CNI_ERR, CniError, invalidConfig, toCniError } from './errors.js';
import type { CniCommand } from './env.js';
import type { CniRequest } from './request.js';
import type { CniResult } from './types.js';

/** `ipam.type` of the request's config, validated (error 7 if missing or not a plain plugin name). */
export function ipamType(req: CniRequest): string {
  const ipam = req.config.ipam;
  if (typeof ipam !== 'object' || ipam === null || Array.isArray(ipam)) throw invalidConfig("network config has no 'ipam' object", 'ipam');
  return validatePluginType(ipam.type, 'ipam.type');
}

/** Delegates `command` to the configured IPAM plugin. */
export function ipamExec(command: CniCommand, req: CniRequest, opts?: DelegateOptions): Promise<CniResult | undefined> {
  return delegate(ipamType(req), command, req, opts);
}

/** Steps to undo, run last-in first-out. */
export class UndoStack {
  readonly #steps: Array<{ what: string; undo: () => unknown }> = [];

  get size(): number {
    return this.#steps.length;
  }

  push(what: string, undo: () => unknown): void {
    this.#steps.push({ what, undo });
  }

  /** Forgets every step (the operation succeeded). */
  clear(): void {
    this.#steps.length = 0;
  }

  /** Runs the undos in reverse order, each even if an earlier one failed; returns what failed. Never throws. */
  async unwind(): Promise<string[]> {
    const failed: string[] = [];
    for (let s = this.#steps.pop(); s !== undefined; s = this.#steps.pop()) {
      try {
        await s.undo();
      } catch (e) {
        failed.push(`${s.what}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    return failed;
  }
}

/**
 * Runs `fn` with a fresh UndoStack. If it throws, unwinds the stack and rethrows the original error as a
 * CniError; undos that failed too are named in its details.
 */
export async function withRollback<T>(fn: (undo: UndoStack) => Promise<T>): Promise<T> {
  const undo = new UndoStack();
  try {
    return await fn(undo);
  } catch (e) {
    const failed = await undo.unwind();
    if (failed.length === 0) throw e;
    const err = toCniError(e);
    const details = [err.details, `rollback also failed: ${failed.join('; ')}`].filter(Boolean).join('; ');
    throw new CniError(err.cniCode, err.message, { details, op: err.op, object: err.object, cause: e });
  }
}

/**
 * IPAM ADD, registering IPAM DEL on `undo` so that a later failure of the ADD gives the addresses back.
 * The Result is the IPAM plugin's, in the 1.1.0 model (no interfaces; the caller sets `ips[].interface`).
 */
export async function ipamAdd(req: CniRequest, undo?: UndoStack, opts?: DelegateOptions): Promise<CniResult> {
  const result = await ipamExec('ADD', req, opts);
  undo?.push(`IPAM DEL (${ipamType(req)})`, () => ipamExec('DEL', req, opts));
  if (result === undefined) throw new CniError(CNI_ERR.DELEGATE_FAILED, `IPAM plugin ${ipamType(req)} returned no Result`);
  return result;
}

/** IPAM DEL (idempotent by the spec; the caller runs it even when the container is gone). */
export async function ipamDel(req: CniRequest, opts?: DelegateOptions): Promise<void> {
  await ipamExec('DEL', req, opts);
}

export async function ipamCheck(req: CniRequest, opts?: DelegateOptions): Promise<void> {
  await ipamExec('CHECK', req, opts);
}

export async function ipamGc(req: CniRequest, opts?: DelegateOptions): Promise<void> {
  await ipamExec('GC', req, opts);
}

export async function ipamStatus(req: CniRequest, opts?: DelegateOptions): Promise<void> {
  await ipamExec('STATUS', req, opts);
}
