/**
 * The netplumb command: parse (commander) → act (netplumbd's API when it answers, else lib/ in process) → print
 * (tables, or --json). Errors are one line on stderr, `netplumb: <what happened>: <what to do>`, with the exit
 * statuses of EXIT (docs/CLI.md).
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { addNetworkCommands } from './network-commands.js';
import { addPolicyCommands } from './policy-commands.js';
import { addRunCommand } from './run-command.js';
import { addInstallCniCommand } from './install-cni.js';
import { addShowCommand } from './show-command.js';
import { addWalkthroughCommand } from './walkthrough-command.js';
import { EXIT, exitCodeOf, oneLine } from './output.js';

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** The whole command tree. */
export function buildProgram(): Command {
  const program = new Command('netplumb')
    .description("Docker's network verbs for any process: networks, connect/disconnect, run, a picture of the topology, CNI plugin install")
    .version(version(), '-V, --version')
    .enablePositionalOptions()
    .showHelpAfterError('(add --help for usage)')
    .addHelpText(
      'after',
      "\nExit status: 0 ok, 1 failed, 2 bad usage, 3 not found, 4 not permitted, 5 exists or in use; run: the command's own, 125-127 when it could not run.\nWith netplumbd running, commands go through its socket ($NETPLUMB_SOCKET); state: $NETPLUMB_STATE_DIR (default /var/lib/netplumb).",
    );
  addNetworkCommands(program);
  addPolicyCommands(program);
  addRunCommand(program);
  addShowCommand(program);
  addInstallCniCommand(program);
  addWalkthroughCommand(program);
  const quiet = (c: Command) => {
    c.exitOverride().configureOutput({ outputError: (s, write) => write(s.replace(/^error: /, 'netplumb: ')) });
    for (const sub of c.commands) quiet(sub);
  };
  quiet(program);
  return program;
}

/** Runs the command line `argv` (without node and the script) and resolves with the exit status. */
export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.OK;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end here with code 0; usage errors were printed by commander already
      return e.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    process.stderr.write(`netplumb: ${oneLine(e)}\n`);
    if (process.env.NETPLUMB_DEBUG === '1' && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    return exitCodeOf(e);
  }
}
