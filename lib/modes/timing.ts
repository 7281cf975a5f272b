/**
 * Where a plugin process spends its time, for benchmarks: with `NETPLUMB_TIMING=1` in the environment, one
 * line on stderr when the process exits,
 *
 *   netplumb-timing netplumb-bridge ADD node=44.9 modules=21.3 ipam=2.0 bridge=0.6 veth=1.2 … total=81.0
 *
 * each value the milliseconds of that phase (`node` = from the process's start to the first line of the
 * plugin, i.e. Node's own start-up). Phases are sequential, so they add up to `total`. Off, it costs nothing
 * but a check of one variable per mark. In the agent (a process that serves one request after another),
 * `timingRequest()` gives each request its own phases instead, for its log line.
 * See docs/MODES.md for the rest.
 */
const enabled = process.env.NETPLUMB_TIMING === '1';
const phases: [string, number][] = [];
let last = 0;
let label = '';

function flush(): void {
  if (phases.length === 0) return;
  const total = performance.now();
  const parts = phases.map(([k, v]) => `${k}=${v.toFixed(1)}`);
  process.stderr.write(`netplumb-timing ${label} ${parts.join(' ')} total=${total.toFixed(1)}\n`);
}

/** Starts the log: the time since the process began is Node's start-up. */
export function timingStart(name: string): void {
  if (!enabled) return;
  label = `${name} ${process.env.CNI_COMMAND ?? ''}`.trim();
  last = performance.now();
  phases.push(['node', last]);
  process.on('exit', flush);
}

/** Ends the phase `name` now (its time is since the previous mark). Repeated names add up. */
export function mark(name: string): void {
  if (!enabled || phases.length === 0) return;
  const now = performance.now();
  const entry = phases.find(([k]) => k === name);
  if (entry) entry[1] += now - last;
  else phases.push([name, now - last]);
  last = now;
}

/**
 * For a long-running process (the agent): forgets the phases marked so far and starts a request's from now.
 * The returned function ends it and gives its phases in milliseconds (undefined when timing is off). The
 * phases are the process's: they mean something only when requests do not overlap, as a benchmark's do not.
 */
export function timingRequest(): () => Record<string, number> | undefined {
  if (!enabled) return () => undefined;
  phases.length = 0;
  last = performance.now();
  const start = last;
  phases.push(['wait', 0]);
  return () => {
    const out: Record<string, number> = {};
    for (const [k, v] of phases) if (v > 0) out[k] = Math.round(v * 100) / 100;
    out.total = Math.round((performance.now() - start) * 100) / 100;
    return out;
  };
}
