#!/usr/bin/env node
/**
 * runc for a machine without CAP_SYS_RESOURCE and with hybrid cgroups (podman's runtime in the tests): on
 * `create` and `run`, drops the rlimits and the cgroup settings from the bundle's config.json, which runc
 * cannot apply there, then becomes runc (execv: every descriptor conmon passed stays where it was).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import koffi from 'koffi';

const args = process.argv.slice(2);
if (args.includes('create') || args.includes('run')) {
  const at = args.findIndex((a) => a === '--bundle' || a === '-b');
  const bundle = at >= 0 ? args[at + 1]! : (args.find((a) => a.startsWith('--bundle='))?.slice('--bundle='.length) ?? process.cwd());
  const file = join(bundle, 'config.json');
  const spec = JSON.parse(readFileSync(file, 'utf8'));
  delete spec.process?.rlimits;
  delete spec.process?.oomScoreAdj;
  if (spec.linux) {
    delete spec.linux.resources;
    delete spec.linux.cgroupsPath;
    spec.linux.namespaces = (spec.linux.namespaces ?? []).filter((n: { type: string }) => n.type !== 'cgroup');
  }
  writeFileSync(file, JSON.stringify(spec));
}
const libc = koffi.load('libc.so.6');
const execv = libc.func('int execv(const char *path, const char **argv)');
const runc = '/usr/sbin/runc';
execv(runc, [runc, ...args, null]);
process.stderr.write(`runc-wrapper: cannot exec ${runc}\n`);
process.exit(127);
