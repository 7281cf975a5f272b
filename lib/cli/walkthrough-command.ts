/**
 * `netplumb walkthrough`: Docker's manual --net=none walkthrough (examples/net-none-walkthrough.ts) as a
 * subcommand. The program is run as it is, with the arguments passed on, so that it stays the one
 * implementation; this command adds the help and checks the PID first (a process that does not exist is
 * said so, not an ENOENT of its namespace file).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { CliError, EXIT } from './output.js';

const PROGRAM = () => fileURLToPath(new URL('../../examples/net-none-walkthrough.js', import.meta.url));

export function addWalkthroughCommand(program: Command): void {
  program
    .command('walkthrough')
    .description("Docker's --net=none walkthrough done by a program: give process PID an interface on a bridge, printing each `ip` step")
    .requiredOption('--pid <pid>', 'the process whose namespace gets eth0')
    .option('--bridge <name>', 'the bridge', 'docker0')
    .option('--address <cidr>', "eth0's address")
    .option('--gateway <ip>', 'the default route')
    .option('--host-if <name>', 'the veth end on the bridge', 'A')
    .option('--peer-if <name>', 'the veth end moved in (renamed eth0)', 'B')
    .option('--cleanup', 'also remove stale /var/run/netns links')
    .addHelpText('after', '\nRunning it again on the same PID reports what is already done.')
    .action(async (o) => {
      if (!/^[0-9]+$/.test(o.pid) || Number(o.pid) < 1) throw new CliError(`--pid ${o.pid}: give a process ID`, EXIT.USAGE);
      if (!existsSync(`/proc/${o.pid}`)) throw new CliError(`there is no process ${o.pid}: give the PID of a running process`, EXIT.NOT_FOUND);
      const args = ['--pid', o.pid, '--bridge', o.bridge, '--host-if', o.hostIf, '--peer-if', o.peerIf];
      if (o.address) args.push('--address', o.address);
      if (o.gateway) args.push('--gateway', o.gateway);
      if (o.cleanup) args.push('--cleanup');
      process.exitCode = await new Promise<number>((resolve, reject) => {
        const child = spawn(process.execPath, [PROGRAM(), ...args], { stdio: 'inherit' });
        child.once('error', reject);
        child.once('exit', (code) => resolve(code ?? EXIT.FAILED));
      });
    });
}
