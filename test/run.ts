/**
 * The test runner. Runs every *.test.js under the given directories (default: all of dist/test) as its own
 * process, a few at a time, each in its own process group with a time limit. Integration tests put
 * themselves in a sandbox (netns-harness), so a killed or hung file takes its namespaces with it.
 * Around the whole run it snapshots the machine's own network state and fails if anything changed.
 *
 *   node dist/test/run.js [test/unit test/integration/links.test.ts …] [--through-agent test/e2e …]
 *   NETPLUMB_TEST_JOBS=3 NETPLUMB_TEST_TIMEOUT=600
 *
 * Files named after `--through-agent` run (again) with NETPLUMB_TEST_AGENT=1: every plugin they exec goes
 * through a netplumbd started in the plugin's namespace (netns-harness/agent.ts), so the same assertions hold
 * for the agent's path. The last line, `N passed, N failed`, counts files of both passes.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { diffSnapshots, takeSnapshot } from '../netns-harness/snapshot.js';
import { sandboxArgv, SANDBOX_ENV, SANDBOX_PENDING } from '../netns-harness/sandbox.js';
import { runId, RUN_ID_ENV } from '../netns-harness/run-id.js';
import { taggedProcesses } from '../netns-harness/snapshot.js';
import { TEST_AGENT_ENV } from '../netns-harness/agent.js';
import { echoHelper } from '../netns-harness/connectivity.js';
import { childrenCpuUsage } from '../lib/sys/libc.js';
import { ensurePluginBins, PLUGIN_BINS_ENSURED_ENV } from './fixtures/cni-runtime.js';

const distTest = dirname(fileURLToPath(import.meta.url));
const distRoot = resolve(distTest, '..');
const repoRoot = resolve(distRoot, '..');

function toDist(arg: string): string {
  const abs = resolve(arg);
  const rel = relative(repoRoot, abs);
  const mapped = rel.startsWith('dist/') || rel.startsWith('..') ? abs : join(distRoot, rel);
  return mapped.replace(/\.ts$/, '.js');
}

function collect(path: string, out: string[]): void {
  if (!existsSync(path)) throw new Error(`no such test path: ${path}`);
  if (statSync(path).isDirectory()) {
    for (const e of readdirSync(path).sort()) {
      if (e === 'fixtures') continue;
      collect(join(path, e), out);
    }
  } else if (path.endsWith('.test.js')) out.push(path);
}

interface FileResult {
  file: string;
  agent: boolean;
  ok: boolean;
  seconds: number;
  /** CPU seconds (user, system) of the file's whole process tree: plugins, servers, `ip` and `nft` included */
  cpu: { user: number; sys: number };
  output: string;
}

/**
 * CPU time of this runner's reaped children so far, in seconds (childrenCpuUsage: getrusage(RUSAGE_CHILDREN)):
 * a child's figure includes every descendant it waited for, and each sandbox's PID 1 reaps all of its
 * processes. The runner's only children while files run are the files, so the growth between two exits is the
 * file that exited (when two exit in the same instant, one gets both).
 */
function reapedChildrenCpu(): { user: number; sys: number } {
  const u = childrenCpuUsage();
  return { user: u.user / 1e6, sys: u.system / 1e6 };
}

let cpuSeen = { user: 0, sys: 0 };

/**
 * The environment of every test file, and so of every process it starts. Without NODE_EXTRA_CA_CERTS: with it
 * set (as on many CI and developer machines) each Node process parses the whole CA bundle while starting,
 * about 33 ms of CPU here (16 ms → 49 ms for an empty script) and 42 ms on a slower machine, paid by every
 * test file, echo server, agent, CLI call and firewall worker; nothing in the suite talks TLS (the registry is
 * unreachable from a sandbox, etcd is plain HTTP). The plugins' own shebangs drop it too (write-plugin-bins.mjs).
 */
function fileEnv(agent: boolean): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    [RUN_ID_ENV]: runId(),
    FORCE_COLOR: '0',
    // main() made sure of the plugin executables: the files need not each start a Node process to check again
    [PLUGIN_BINS_ENSURED_ENV]: '1',
    ...(agent ? { [TEST_AGENT_ENV]: '1' } : {}),
  };
  delete env.NODE_EXTRA_CA_CERTS;
  return env;
}

/**
 * Whether `file` puts itself in a sandbox first thing (`await sandboxed();` after its imports). Such a file the
 * runner starts in a sandbox of its own, as its `sandboxed()` would: otherwise a Node process loads the file and
 * everything it imports only to start the sandbox and wait (some 30 ms of CPU a file).
 */
function sandboxesItself(file: string): boolean {
  return /^await sandboxed\(\);$/m.test(readFileSync(file, 'utf8'));
}

async function runFile(file: string, agent: boolean, timeoutSec: number): Promise<FileResult> {
  const started = Date.now();
  const sandbox = sandboxesItself(file);
  const [command, ...args] = sandbox ? sandboxArgv([process.execPath, file]) : [process.execPath, file];
  const env = { ...fileEnv(agent), ...(sandbox ? { [SANDBOX_ENV]: SANDBOX_PENDING } : {}) };
  const child = spawn(command!, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }, timeoutSec * 1000);
  const code = await new Promise<number>((res) => child.once('exit', (c, s) => res(c ?? (s ? 128 : 1))));
  const now = reapedChildrenCpu();
  const cpu = { user: now.user - cpuSeen.user, sys: now.sys - cpuSeen.sys };
  cpuSeen = now;
  clearTimeout(timer);
  if (timedOut) output += `\n!! killed after ${timeoutSec} s\n`;
  const name = relative(distRoot, file) + (agent ? ' (through the agent)' : '');
  const unrun = testsNotRun(output);
  if (unrun) output += `\n!! ${unrun}\n`;
  return { file: name, agent, ok: code === 0 && !timedOut && !unrun, seconds: (Date.now() - started) / 1000, cpu, output };
}

/**
 * uvu 0.5 exits 0 when a suite's `test.before` throws: it prints `(0 / N)` and a summary whose Passed is short
 * of its Total, with no error. A file whose summaries count fewer passed and skipped tests than tests failed.
 */
function testsNotRun(output: string): string | undefined {
  const count = (label: string) => [...output.matchAll(new RegExp(`^\\s*${label}:\\s+(\\d+)\\s*$`, 'gm'))].reduce((n, m) => n + Number(m[1]), 0);
  const total = count('Total');
  const done = count('Passed') + count('Skipped');
  return done < total ? `${total - done} of ${total} tests did not pass (a failing before/after hook prints no error)` : undefined;
}

/**
 * What the whole suite (no arguments) runs a second time through the agent: the files that exec plugins as a
 * runtime does and compare what they answer (every verb, mode and version, the differential and chaining tests,
 * the plugin contract), and the hostile input and privilege checks. Files whose subject is the data plane
 * (packets, isolation, icc, scale) are not repeated: the agent builds the same kernel state, which the first
 * pass already checks packet by packet. The agent's own tests start their agents themselves.
 */
const AGENT_PASS = [
  ...readdirSync(join(distTest, 'e2e'))
    .filter((f) => /^(bridge-(verbs|differential|chaining|records)|modes-|host-local-plugin|ipam-delegation|plugin-contract).*\.test\.js$/.test(f))
    .map((f) => join(distTest, 'e2e', f)),
  join(distTest, 'hardening/input-corpus.test.js'),
  join(distTest, 'hardening/privilege-caps.test.js'),
  // the agent remembers IPAM stores between requests: the reference host-local changes them meanwhile
  join(distTest, 'integration/ipam-interop.test.js'),
];

/** Where the run's time went: the total CPU and the files that cost the most, to know what to make cheaper. */
function costSummary(results: readonly FileResult[]): string {
  const total = (r: FileResult) => r.cpu.user + r.cpu.sys;
  const user = results.reduce((a, r) => a + r.cpu.user, 0);
  const sys = results.reduce((a, r) => a + r.cpu.sys, 0);
  const top = [...results].sort((a, b) => total(b) - total(a)).slice(0, 10);
  const lines = top.map((r) => `   ${total(r).toFixed(1).padStart(6)} s CPU ${r.seconds.toFixed(1).padStart(6)} s  ${r.file}`);
  return `\n━━ CPU of the test processes: ${(user + sys).toFixed(1)} s (user ${user.toFixed(1)}, system ${sys.toFixed(1)}); the costliest files:\n${lines.join('\n')}\n`;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const split = args.indexOf('--through-agent');
  const direct = split < 0 ? args : args.slice(0, split);
  const viaAgent = split < 0 ? [] : args.slice(split + 1);
  const files: string[] = [];
  for (const a of args.length ? direct : [distTest]) collect(toDist(a), files);
  const agentFiles: string[] = [];
  for (const a of args.length ? viaAgent : AGENT_PASS) collect(toDist(a), agentFiles);
  const jobs = Math.max(1, Number(process.env.NETPLUMB_TEST_JOBS ?? 3));
  const timeoutSec = Number(process.env.NETPLUMB_TEST_TIMEOUT ?? 600);
  const id = runId();
  ensurePluginBins();
  await echoHelper(); // compiled once here, not by the first files at once
  const before = await takeSnapshot();
  const started = Date.now();
  cpuSeen = reapedChildrenCpu();
  const results: FileResult[] = [];
  const queue = [...files.map((f) => ({ f, agent: false })), ...agentFiles.map((f) => ({ f, agent: true }))];
  await Promise.all(
    Array.from({ length: Math.min(jobs, queue.length) }, async () => {
      for (let q = queue.shift(); q !== undefined; q = queue.shift()) {
        const r = await runFile(q.f, q.agent, timeoutSec);
        results.push(r);
        const cpu = `${(r.cpu.user + r.cpu.sys).toFixed(1)} s CPU`;
        process.stdout.write(`\n━━ ${r.ok ? 'PASS' : 'FAIL'} ${r.file} (${r.seconds.toFixed(1)} s, ${cpu})\n${r.output.trimEnd()}\n`);
      }
    }),
  );
  // Sandboxes die with their PID 1; give the kernel a moment to reap before looking for leftovers.
  let stray: string[] = [];
  for (let i = 0; i < 50; i++) {
    stray = taggedProcesses(id);
    if (stray.length === 0) break;
    await sleep(100);
  }
  const diffs = diffSnapshots(before, await takeSnapshot());
  const failed = results.filter((r) => !r.ok);
  if (results.length > 1) process.stdout.write(costSummary(results));
  process.stdout.write(`\n━━ ${results.length} files, ${failed.length} failed, ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  for (const f of failed) process.stdout.write(`   FAIL ${f.file}\n`);
  if (stray.length) process.stdout.write(`!! processes left running:\n   ${stray.join('\n   ')}\n`);
  if (diffs.length) process.stdout.write(`!! the machine's own network state changed during the run:\n${diffs.join('\n')}\n`);
  process.stdout.write(`\n${results.length - failed.length} passed, ${failed.length} failed\n`);
  return failed.length || stray.length || diffs.length ? 1 : 0;
}

process.exitCode = await main();
