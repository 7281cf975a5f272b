/**
 * Ending a plugin process quickly. process.exit() tears down V8, the thread pool and every loaded native
 * library (koffi, netlink, libnftables) before the kernel is asked to end the process; a CNI plugin that has
 * written its answer (stdout and stderr to pipes or files are written synchronously on Linux) gains nothing
 * from that. lib/sys/libc.ts offers _exit(2) here once it has loaded libc, so a process that never needed
 * koffi does not load it just to exit.
 * See docs/NET.md for the rest.
 */
let quick: ((code: number) => void) | undefined;

/** @internal lib/sys/libc.ts: _exit(2) */
export function offerQuickExit(fn: (code: number) => void): void {
  quick = fn;
}

/**
 * Exits with `code`: runs the 'exit' listeners (timing lines, the plugin loader's code cache), then _exit(2)
 * if libc is at hand, process.exit otherwise.
 */
export function exitNow(code: number): never {
  if (quick !== undefined) {
    process.exitCode = code;
    process.emit('exit', code);
    quick(code);
  }
  process.exit(code);
}
