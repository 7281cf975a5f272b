#!/usr/bin/env node
/**
 * A CNI plugin that records what the runtime sends, then hands the call to the real plugin: the runtime tests
 * put it in a network configuration as `"type": "netplumb-recorder", "recordFor": "netplumb-bridge"`. Each call
 * is written to $NETPLUMB_RECORD_DIR as `<time>-<pid>-<CNI_COMMAND>.json` ({env: the CNI_* variables, stdin:
 * the exact bytes as text}); the real plugin (found in CNI_PATH or beside the recorder) gets the same environment and stdin, and its
 * output and exit status are passed back unchanged.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const stdin = readFileSync(0);
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('CNI_')));
const dir = process.env.NETPLUMB_RECORD_DIR;
if (dir) {
  const name = `${process.hrtime.bigint()}-${process.pid}-${process.env.CNI_COMMAND ?? 'none'}.json`;
  writeFileSync(join(dir, name), `${JSON.stringify({ env, stdin: stdin.toString('utf8') }, null, 2)}\n`);
}
let target: unknown;
try {
  target = JSON.parse(stdin.toString('utf8')).recordFor;
} catch {
  /* VERSION may come without a configuration: answer it ourselves through the default plugin */
}
const type = typeof target === 'string' && /^[a-z0-9-]+$/.test(target) ? target : 'netplumb-bridge';
// CNI_PATH, then the directory the recorder was found in (libcni sends VERSION with a dummy CNI_PATH)
const dirs = [...(process.env.CNI_PATH ?? '').split(':').filter(Boolean), dirname(process.argv[1]!)];
const file = dirs.map((d) => join(d, type)).find((f) => existsSync(f));
if (file === undefined) {
  process.stdout.write(`${JSON.stringify({ cniVersion: '1.0.0', code: 5, msg: `netplumb-recorder: ${type} not found in CNI_PATH` })}\n`);
  process.exit(1);
}
const r = spawnSync(file, [], { input: stdin, env: process.env, maxBuffer: 1 << 24 });
process.stdout.write(r.stdout ?? '');
process.stderr.write(r.stderr ?? '');
process.exit(r.status ?? 1);
