/**
 * The netplumb command: parse (commander) → act (netplumbd's API when it answers, else lib/ in process) → print
 * (tables, or --json). Errors are one line on stderr, `netplumb: <what happened>: <what to do>`, with the exit
 * statuses of EXIT (docs/CLI.md).
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { EXIT, exitCodeOf, oneLine } from './output.js';

type AddCommands = (program: Command) => void;
const networkCommands = async (): Promise<AddCommands> => (await import('./network-commands.js')).addNetworkCommands;
/**
 * Each command's module by the command's name, in the order of the help. A module is loaded only when its
 * command runs: together they pull in netlink, the firewall, the layout library… (a start that only prints
 * --version or one command's help should not pay for all of that).
 */
const COMMANDS: ReadonlyArray<[string, () => Promise<AddCommands>]> = [
  ['network', networkCommands],
  ['connect', networkCommands],
  ['disconnect', networkCommands],
  ['policy', async () => (await import('./policy-commands.js')).addPolicyCommands],
  ['run', async () => (await import('./run-command.js')).addRunCommand],
  ['show', async () => (await import('./show-command.js')).addShowCommand],
  ['install-cni', async () => (await import('./install-cni.js')).addInstallCniCommand],
  ['walkthrough', async () => (await import('./walkthrough-command.js')).addWalkthroughCommand],
];

/**
 * The commands `argv` needs: the one its first word names; none for --version; all of them otherwise (the
 * top-level help lists them, and a misspelt name gets commander's suggestion).
 */
async function commandsFor(argv: readonly string[]): Promise<AddCommands[]> {
  const named = COMMANDS.filter(([name]) => name === argv[0]);
  const wanted = named.length ? named : argv[0] === '-V' || argv[0] === '--version' ? [] : COMMANDS;
  const adders = await Promise.all(wanted.map(([, load]) => load()));
  return [...new Set(adders)];
}

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** The command tree, with the commands `argv` needs (all of them by default). */
export async function buildProgram(argv: readonly string[] = []): Promise<Command> {
  const program = new Command('netplumb')
    .description("Docker's network verbs for any process: networks, connect/disconnect, run, a picture of the topology, CNI plugin install")
    .version(version(), '-V, --version')
    .enablePositionalOptions()
    .showHelpAfterError('(add --help for usage)')
    .addHelpText(
      'after',
      "\nExit status: 0 ok, 1 failed, 2 bad usage, 3 not found, 4 not permitted, 5 exists or in use; run: the command's own, 125-127 when it could not run.\nWith netplumbd running, commands go through its socket ($NETPLUMB_SOCKET); state: $NETPLUMB_STATE_DIR (default /var/lib/netplumb).",
    );
  for (const add of await commandsFor(argv)) add(program);
  const quiet = (c: Command) => {
    c.exitOverride().configureOutput({ outputError: (s, write) => write(s.replace(/^error: /, 'netplumb: ')) });
    for (const sub of c.commands) quiet(sub);
  };
  quiet(program);
  return program;
}

/** Runs the command line `argv` (without node and the script) and resolves with the exit status. */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    const program = await buildProgram(argv);
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
