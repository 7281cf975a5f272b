/** `netplumb policy allow|ls|rm`: allow rules of icc=false networks (lib/networks/policy.ts). */
import type { Command } from 'commander';
import { parsePortSpec } from '../networks/policy-store.js';
import { networkOps, type NetworkOps } from './network-ops.js';
import { CliError, EXIT, printJson, printTable } from './output.js';

const collect = (v: string, prev: string[]) => [...prev, v];

function ports(list: string[]) {
  if (list.length === 0) throw new CliError('policy allow needs at least one --port PORT[/tcp|udp|sctp]', EXIT.USAGE);
  try {
    return list.map(parsePortSpec);
  } catch (e) {
    throw new CliError(`--port: ${(e as Error).message}`, EXIT.USAGE);
  }
}

/** Adds `policy` to `program`; `ops` is called once per command (agent or in process). */
export function addPolicyCommands(program: Command, ops: () => Promise<NetworkOps> = networkOps): void {
  const policy = program.command('policy').description('who may talk to whom inside an icc=false network: allow rules (one direction; replies pass)');

  policy
    .command('allow')
    .description('let endpoints open connections to another endpoint on given ports')
    .argument('<network>')
    .requiredOption('--from <endpoint>', 'an endpoint that may open connections (repeatable)', collect, [])
    .requiredOption('--to <endpoint>', 'the endpoint it may reach')
    .option('--port <PORT[/tcp|udp|sctp]>', 'a port of --to (repeatable; default protocol tcp)', collect, [])
    .option('--json', 'print the rule as JSON')
    .action(async (net: string, o) => {
      const rule = await (await ops()).allow(net, { from: o.from as string[], to: o.to as string, ports: ports(o.port as string[]) });
      if (o.json) return printJson(rule);
      process.stdout.write(`${rule.id}\n`);
    });

  policy
    .command('ls')
    .alias('list')
    .description("list a network's allow rules")
    .argument('<network>')
    .option('--json', 'print a JSON array')
    .action(async (net: string, o) => {
      const rules = await (await ops()).listPolicy(net);
      if (o.json) return printJson(rules);
      printTable(
        ['ID', 'FROM', 'TO', 'PORTS'],
        rules.map((r) => [r.id, r.fromNames.join(','), r.toName, r.ports.map((p) => `${p.port}/${p.protocol}`).join(',')]),
      );
    });

  policy
    .command('rm')
    .alias('remove')
    .description('remove allow rules by ID')
    .argument('<network>')
    .argument('<id...>', 'rule IDs from `netplumb policy ls`')
    .action(async (net: string, ids: string[]) => {
      const x = await ops();
      for (const id of ids) process.stdout.write(`${(await x.removeRule(net, id)).id}\n`);
    });
}
