/**
 * Many operations at once. Requests made in the same turn of the event loop leave in one sendmsg and are
 * answered by sequence number, so `batch` over hundreds of operations costs a handful of syscalls rather than a
 * round trip each. Operations that depend on each other go in one function (`async () => { await a; await b; }`).
 * See docs/NET.md for the rest.
 */
/** How batch runs its operations. */
export interface BatchOptions {
  /** operations started at most at once (default 256) */
  concurrency?: number;
}

/**
 * Runs every operation, at most `concurrency` at a time; resolves with their results in order, or rejects with the
 * first error after all settled. Equivalent to: `ip -batch FILE` (with `-force`: batchSettled).
 */
export async function batch<T>(ops: Iterable<() => Promise<T>>, opts: BatchOptions = {}): Promise<T[]> {
  const settled = await batchSettled(ops, opts);
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}

/** Like batch, but reports each operation's outcome instead of failing. Equivalent to: `ip -force -batch FILE`. */
export async function batchSettled<T>(ops: Iterable<() => Promise<T>>, opts: BatchOptions = {}): Promise<PromiseSettledResult<T>[]> {
  const list = [...ops];
  const out: PromiseSettledResult<T>[] = new Array(list.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < list.length; i = next++) {
      try {
        out[i] = { status: 'fulfilled', value: await list[i]!() };
      } catch (reason) {
        out[i] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 256, list.length) }, worker));
  return out;
}
