#!/usr/bin/env node
/**
 * netplumbd: the netplumb agent, in the foreground, logging JSON lines to stderr. docs/AGENT.md.
 *
 *   netplumbd [--socket PATH] [--group NAME] [--cleanup-grace SECONDS] [--overlay FILE]
 *
 * SIGTERM or SIGINT: stop accepting, finish the requests in flight, remove the socket, exit 0.
 */
import { readFileSync } from 'node:fs';
import { AgentStartError, DEFAULT_SOCKET, startAgent } from '../lib/agent/index.js';
import { jsonLog } from '../lib/agent/log.js';

const USAGE = `usage: netplumbd [--socket PATH] [--group NAME] [--cleanup-grace SECONDS] [--overlay FILE]
  --socket PATH             the Unix socket to serve on (default ${DEFAULT_SOCKET})
  --group NAME              members of this group may use the agent besides root (default: root only)
  --cleanup-grace SECONDS   wait this long for a DEL after a container's namespace vanished, then run it (default 10)
  --overlay FILE            run the VXLAN overlay configured in FILE (JSON; docs/OVERLAY.md)
`;

function parseArgs(argv: readonly string[]): { socket?: string; group?: string; cleanupGraceMs?: number; overlay?: string } {
  const out: { socket?: string; group?: string; cleanupGraceMs?: number; overlay?: string } = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === '--socket') out.socket = value();
    else if (flag === '--group') out.group = value();
    else if (flag === '--overlay') out.overlay = value();
    else if (flag === '--cleanup-grace') {
      const v = value();
      if (!/^\d+(\.\d+)?$/.test(v)) throw new Error('--cleanup-grace needs a number of seconds');
      out.cleanupGraceMs = Math.round(Number(v) * 1000);
    } else if (flag === '--help' || flag === '-h') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${JSON.stringify(a)}`);
  }
  if (out.socket !== undefined && !out.socket.startsWith('/')) throw new Error('--socket needs an absolute path');
  return out;
}

function packageVersion(): string {
  try {
    return JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

async function main(): Promise<void> {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`netplumbd: ${(e as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (process.geteuid?.() !== 0) process.stderr.write('netplumbd: warning: not running as root; plugins will lack privileges\n');
  let overlayText: string | undefined;
  if (args.overlay !== undefined) {
    try {
      overlayText = readFileSync(args.overlay, 'utf8');
    } catch (e) {
      process.stderr.write(`netplumbd: --overlay: ${(e as Error).message}\n`);
      process.exit(2);
    }
  }
  const { overlay: _, ...agentArgs } = args;
  let agent;
  try {
    agent = await startAgent({ ...agentArgs, version: packageVersion() });
  } catch (e) {
    const msg = e instanceof AgentStartError ? e.message : `cannot start: ${(e as Error).message}`;
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), event: 'start-failed', message: msg })}\n`);
    process.exit(1);
  }
  // the overlay is loaded only when asked for; it retries while its store is unreachable
  const overlay = overlayText === undefined ? undefined : await import('../lib/agent/overlay/run.js').then((m) => m.runOverlay(overlayText!, jsonLog()));
  const stop = () => {
    void Promise.resolve(overlay?.close())
      .then(() => agent.close())
      .then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

void main();
