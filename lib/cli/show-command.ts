/** `netplumb show [NETNS…] [--format tree|json|dot|svg] [-o FILE]`: the network topology, for people or tools. */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { renderDot, renderSvg } from './topology-draw.js';
import { readTopology, renderTree } from './topology.js';
import { CliError, EXIT } from './output.js';
import { requireCapabilities } from './network-ops.js';

const FORMATS = ['tree', 'json', 'dot', 'svg'] as const;

export function addShowCommand(program: Command): void {
  program
    .command('show')
    .description('draw the namespaces, links, bridges and their ports, veth pairs, addresses, default routes and published ports')
    .argument('[netns...]', 'namespaces to show beside the host: PIDs, paths or names (default: named ones and attached targets)')
    .option('--format <format>', FORMATS.join(' | '), 'tree')
    .option('--json', 'the same as --format json')
    .option('--layout <layout>', 'svg layout: auto (Graphviz dot when installed, else elkjs) | dot | elk', 'auto')
    .option('-o, --output <file>', 'write to FILE instead of stdout')
    .action(async (given: string[], o) => {
      const format = o.json ? 'json' : o.format;
      if (!FORMATS.includes(format)) throw new CliError(`--format ${format}: use ${FORMATS.join(', ')}`, EXIT.USAGE);
      if (!['auto', 'dot', 'elk'].includes(o.layout)) throw new CliError(`--layout ${o.layout}: use auto, dot or elk`, EXIT.USAGE);
      requireCapabilities('show', ['CAP_SYS_ADMIN']); // entering other namespaces to read them
      const t = await readTopology(given);
      const text =
        format === 'json'
          ? `${JSON.stringify(t, null, 2)}\n`
          : format === 'dot'
            ? renderDot(t)
            : format === 'svg'
              ? await renderSvg(t, o.layout)
              : renderTree(t);
      if (o.output) writeFileSync(o.output, text);
      else process.stdout.write(text);
    });
}
