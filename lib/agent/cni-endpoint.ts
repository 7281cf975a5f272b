/**
 * The CNI request endpoint's wire format, shared by the agent and the forwarder (forwarder/netplumb-forward.c),
 * chosen so that a small C program can produce and read it without a JSON library:
 *
 *   POST /v1/cni/<plugin executable name>
 *   X-Netplumb-Env-Length: N
 *   body: N bytes of environment (`KEY=VALUE\0` entries, as /proc/PID/environ), then stdin as received
 *
 *   200, X-Netplumb-Exit-Status: 0|1, X-Netplumb-Stderr: <base64 of the plugin's stderr>
 *   body: exactly the plugin's stdout
 *
 * A response carrying X-Netplumb-Exit-Status is the plugin's answer (the forwarder relays it). Any other
 * response (421 caller in another namespace, 404 unknown plugin, 413, 503 draining) means the agent ran
 * nothing, and the forwarder runs the plugin in process.
 */
import { MAX_STDIN_BYTES, stdinTooLarge } from '../cni/request.js';

export const ENV_LENGTH_HEADER = 'x-netplumb-env-length';
export const EXIT_STATUS_HEADER = 'x-netplumb-exit-status';
export const STDERR_HEADER = 'x-netplumb-stderr';

/** The most environment accepted: a runtime's is a few KiB. */
export const MAX_ENV_BYTES = 256 * 1024;
/**
 * The most stdin carried: past the plugins' own limit only so that an oversized configuration gets the same
 * answer through the agent as in process ("larger than 1 MiB"); the forwarder sends at most this much.
 */
export const MAX_CARRIED_STDIN_BYTES = 16 * 1024 * 1024 + 1;
/** stderr carried back in a header, at most this many bytes (the rest is cut, marked) */
export const MAX_STDERR_BYTES = 8 * 1024;

/** Parses `KEY=VALUE\0…` into an environment record (entries without `=` are dropped, as execve's callee sees them). */
export function parseEnvBlock(block: Buffer): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of block.toString('utf8').split('\0')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/** Encodes an environment as the forwarder does (for tests and for clients other than the forwarder). */
export function envBlock(env: Readonly<Record<string, string | undefined>>): Buffer {
  return Buffer.from(
    Object.entries(env)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${v}\0`)
      .join(''),
  );
}

/**
 * The stdin part of a request body, as the skeleton's readStdin would have returned it: more than the plugins'
 * limit is the same error 5 the plugin gives in process.
 */
export function stdinReader(stdin: Buffer, stdinBytes: number): () => Promise<Buffer> {
  return async () => {
    if (stdinBytes > MAX_STDIN_BYTES) throw stdinTooLarge();
    return stdin;
  };
}

/** stderr for the header: base64 of at most MAX_STDERR_BYTES. */
export function stderrHeader(stderr: string): string {
  let b = Buffer.from(stderr);
  if (b.length > MAX_STDERR_BYTES) b = Buffer.concat([b.subarray(0, MAX_STDERR_BYTES), Buffer.from('\n[netplumbd: stderr cut]\n')]);
  return b.toString('base64');
}
