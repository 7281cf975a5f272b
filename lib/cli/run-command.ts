/**
 * `netplumb run [--net=MODE] -- CMD …`: Docker's `run --net` without the image: CMD starts in a network
 * namespace configured by the mode, and when CMD exits its network goes with it. Only the network namespace
 * is new (no root filesystem, no cgroups, same user).
 *
 *   bridge (default)    a new namespace attached to --network (default: `bridge`, defined on first use)
 *   none                a new namespace with loopback only (netplumb-none)
 *   host                the caller's own namespace: CMD runs as is
 *   container:TARGET    the namespace of TARGET (a name given earlier, a PID or a namespace path)
 *
 * A holder process (`sleep`, killed with netplumb by PR_SET_PDEATHSIG through setpriv) owns the new namespace
 * while it is configured and while CMD runs in it (through nsenter): CMD never sees an unconfigured network.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';
import { constants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { handle } from '../cni/skeleton.js';
import { nonePlugin } from '../modes/none.js';
import { NetplumbError } from '../errors.js';
import { forgetName, parseTarget, rememberName, resolveTarget } from '../networks/index.js';
import { parsePublish } from './network-commands.js';
import { networkOps, requireCapabilities } from './network-ops.js';
import { CliError, EXIT, oneLine } from './output.js';

const DEFAULT_NETWORK = 'bridge';

/** Starts the holder of a fresh network namespace and resolves once it is in it (bounded). */
async function startHolder(): Promise<{ child: ChildProcess; netns: string; pid: number }> {
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', 'unshare', '--net', '--', 'sleep', 'infinity'], { stdio: 'ignore' });
  let failed: string | undefined;
  child.once('error', (e) => (failed = e.message));
  child.once('exit', (code) => (failed ??= `the namespace holder exited early (status ${code}); unshare needs CAP_SYS_ADMIN`));
  const own = statSync('/proc/self/ns/net').ino;
  for (let i = 0; i < 400 && failed === undefined; i++) {
    try {
      const comm = statSync(`/proc/${child.pid}/ns/net`).ino !== own;
      if (comm) return { child, netns: `/proc/${child.pid}/ns/net`, pid: child.pid! };
    } catch {
      /* not yet */
    }
    await sleep(5);
  }
  child.kill('SIGKILL');
  throw new CliError(`could not make a network namespace: ${failed ?? 'the holder did not start within 2 s'}`, EXIT.RUN_FAILED);
}

/** Runs argv (in `netns` when given) with the terminal passed through; resolves with its exit status. */
function runCommand(argv: readonly string[], netns: string | undefined): Promise<number> {
  const full = netns ? ['nsenter', `--net=${netns}`, '--', ...argv] : [...argv];
  return new Promise((resolve) => {
    const child = spawn(full[0]!, full.slice(1), { stdio: 'inherit' });
    const forward = (sig: NodeJS.Signals) => child.kill(sig);
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    for (const s of signals) process.on(s, forward);
    const done = (status: number) => {
      for (const s of signals) process.off(s, forward);
      resolve(status);
    };
    child.once('error', (e: NodeJS.ErrnoException) => {
      process.stderr.write(`netplumb: cannot run ${argv[0]}: ${e.code === 'ENOENT' ? 'not found' : e.message}\n`);
      done(e.code === 'ENOENT' ? EXIT.RUN_NOT_FOUND : EXIT.RUN_CANNOT_EXEC);
    });
    child.once('exit', (code, signal) => done(code ?? 128 + (signal ? constants.signals[signal] : 0)));
  });
}

export function addRunCommand(program: Command): void {
  program
    .command('run')
    .description("run a command in a network namespace of its own, configured like Docker's --net; its network goes when it exits")
    .option('--net <mode>', 'bridge | none | host | container:TARGET', 'bridge')
    .option('--network <name>', `the network of --net=bridge (default: ${DEFAULT_NETWORK}, defined on first use)`)
    .option('-p, --publish <HOST:CONTAINER[/tcp|udp]>', 'publish a port (bridge; repeatable)', (v: string, p: string[]) => [...p, v], [] as string[])
    .option('--ip <ip>', 'ask for this address (bridge)')
    .option('--name <name>', 'name the namespace while CMD runs (for connect, disconnect, --net=container:NAME)')
    .argument('<cmd...>', 'the command and its arguments (after --)')
    .passThroughOptions()
    .addHelpText(
      'after',
      "\nExit status: the command's; 125 when netplumb failed before it ran, 126/127 when it cannot be run or was not found.\nExample: netplumb run --network web -p 8080:80 --name app -- python3 -m http.server 80",
    )
    .action(async (cmd: string[], o) => {
      process.exitCode = await runIn(cmd, o);
    });
}

interface RunOptions {
  net: string;
  network?: string;
  publish: string[];
  ip?: string;
  name?: string;
}

async function runIn(cmd: string[], o: RunOptions): Promise<number> {
  const mode = o.net;
  const publish = o.publish.map(parsePublish);
  if (mode !== 'bridge' && (publish.length || o.network || o.ip)) {
    throw new CliError(`--publish, --network and --ip go with --net=bridge, not --net=${mode}`, EXIT.USAGE);
  }
  if (mode === 'host') return runCommand(cmd, undefined);
  if (mode.startsWith('container:')) {
    requireCapabilities('run --net=container', ['CAP_SYS_ADMIN']);
    const t = resolveTarget(parseTarget(mode.slice('container:'.length)));
    return runCommand(cmd, t.netns);
  }
  if (mode !== 'bridge' && mode !== 'none') throw new CliError(`--net=${mode}: use bridge, none, host or container:TARGET`, EXIT.USAGE);

  const ops = mode === 'bridge' ? await networkOps() : undefined;
  if (ops?.via !== 'agent') requireCapabilities(`run --net=${mode}`, ['CAP_NET_ADMIN', 'CAP_SYS_ADMIN']);
  const holder = await startHolder();
  let attached: string | undefined;
  try {
    if (mode === 'none') {
      const id = `ns-${statSync(holder.netns).ino.toString(16)}`;
      const conf = JSON.stringify({ cniVersion: '1.1.0', name: 'none', type: 'netplumb-none' });
      const out = await handle(
        nonePlugin,
        { CNI_COMMAND: 'ADD', CNI_CONTAINERID: id, CNI_NETNS: holder.netns, CNI_IFNAME: 'lo', CNI_PATH: '/' },
        { readStdin: async () => Buffer.from(conf) },
      );
      if (out.exitCode !== 0) throw out.error;
      if (o.name) rememberName(o.name, holder.netns, holder.pid);
    } else {
      const network = o.network ?? DEFAULT_NETWORK;
      if (o.network === undefined && !(await ops!.list()).some((n) => n.name === DEFAULT_NETWORK)) {
        await ops!.create({ name: DEFAULT_NETWORK });
      }
      await ops!.connect(network, holder.netns, { publish, ...(o.ip ? { ip: o.ip } : {}), ...(o.name ? { name: o.name } : {}) });
      attached = network;
    }
  } catch (e) {
    holder.child.kill('SIGKILL');
    throw new CliError(`could not set up the network of run: ${oneLine(e)}`, EXIT.RUN_FAILED, {
      cause: e,
      ...(e instanceof NetplumbError ? { code: e.code } : {}),
    });
  }
  try {
    return await runCommand(cmd, holder.netns);
  } finally {
    try {
      if (attached) await ops!.disconnect(attached, holder.netns);
    } finally {
      holder.child.kill('SIGKILL');
      if (o.name) forgetName(o.name);
    }
  }
}
