/**
 * All-or-nothing for a plugin's ADD: each step that succeeded registers how to undo itself, and when a later
 * step fails the undos run last-in first-out before the error goes back to the runtime (the reference
 * plugins' `defer if !success`). Part of the plugin-writing API (`netplumb/cni`); lib/modes/steps.ts builds
 * its named steps on it. See docs/CNI.md for the rest.
 */
import { CniError, toCniError } from './errors.js';

/** Steps to undo, run last-in first-out. */
export class UndoStack {
  readonly #steps: Array<{ what: string; undo: () => unknown }> = [];

  /** How many undos are registered. */
  get size(): number {
    return this.#steps.length;
  }

  /** Registers how to undo what just succeeded; `what` names it in error details. */
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
