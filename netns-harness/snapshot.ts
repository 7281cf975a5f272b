/**
 * What "leave the machine as you found it" is checked against: a snapshot of the caller's network
 * namespace (links, addresses, routes, rules, nftables), the named namespaces under /var/run/netns, the
 * mount table, and the processes tagged with a run ID. Taken outside any sandbox, it sees the machine's own
 * state; two snapshots are compared aspect by aspect.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { run } from './exec.js';
import { RUN_ID_ENV } from './run-id.js';

export type Snapshot = Record<string, string>;

async function tryRun(argv: string[], netns?: string, input?: string): Promise<string> {
  try {
    const r = await run(argv, { check: false, timeoutMs: 20_000, netns, input });
    return r.exitCode === 0 ? r.stdout : `(unavailable: ${argv[0]} exited ${r.exitCode}: ${r.stderr.trim()})`;
  } catch (e) {
    return `(unavailable: ${(e as Error).message})`;
  }
}

function dropKeys(text: string, keys: readonly string[]): string {
  if (!text.startsWith('[')) return text;
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v && typeof v === 'object') {
      return Object.fromEntries(
        Object.entries(v)
          .filter(([k]) => !keys.includes(k))
          .map(([k, x]) => [k, strip(x)]),
      );
    }
    return v;
  };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // iproute2 prints names with control characters unescaped (invalid JSON): compare the raw text then
    return text;
  }
  return JSON.stringify(strip(parsed), null, 1);
}

/** Processes (other than the caller) whose environment carries NETPLUMB_RUN_ID=`id`. */
export function taggedProcesses(id: string): string[] {
  const needle = `${RUN_ID_ENV}=${id}\0`;
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${entry}/environ`, 'latin1');
      if (!(env + '\0').includes(needle)) continue;
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'latin1').split('\0').join(' ').trim();
      found.push(`${entry} ${cmd}`);
    } catch {
      /* gone or not ours to read */
    }
  }
  return found;
}

// Links with their details and addresses, the routes of every table and family, the IPv4 rules: one `ip -batch`.
// (The rules of another family need `-6`, a global option, so a program of their own.)
const LINKS_ROUTES_RULES = 'addr show\nroute show table all\nrule show\n';

/** `ip -j -d addr show` as links (without their addresses) and addresses (per link name); text passes through. */
function splitLinksAndAddrs(text: string): [string, string] {
  if (!text.startsWith('[')) return [text, text];
  let parsed: { ifname?: string; addr_info?: unknown }[];
  try {
    parsed = JSON.parse(text);
  } catch {
    return [text, text];
  }
  const links = parsed.map(({ addr_info: _, ...link }) => link);
  const addrs = parsed.map((l) => ({ ifname: l.ifname, addr_info: l.addr_info }));
  return [JSON.stringify(links), JSON.stringify(addrs)];
}

/** The `n` JSON documents `ip -j -batch` printed, one per line; an error text stands for each of them. */
function batchOutputs(text: string, n: number): string[] {
  const lines = text.split('\n').filter((l) => l.startsWith('['));
  return lines.length === n ? lines : Array.from({ length: n }, () => text);
}

/**
 * The snapshot of the caller's network namespace, or of the one at `opts.netns` (a harness Host's
 * `netnsPath`): links, addresses, routes and rules come from that namespace; named namespaces and mounts
 * from the caller's mount namespace, which nsenter --net shares.
 */
export async function takeSnapshot(opts: { netns?: string } = {}): Promise<Snapshot> {
  const ns = opts.netns;
  const lifetimes = ['valid_life_time', 'preferred_life_time', 'expires'];
  let netns: string;
  try {
    netns = readdirSync('/var/run/netns').sort().join('\n');
  } catch {
    netns = '(none)';
  }
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const f = l.split(' ');
      const sep = f.indexOf('-');
      return `${f[4]} ${f[sep + 1]} ${f[sep + 2]}`;
    })
    .sort()
    .join('\n');
  // Three programs, not seven: snapshots are taken often (before and after every hostile case batch, in loops
  // until the kernel settles), and each program is a process start, twice with nsenter. `ip -d addr` lists
  // every link with its details and its addresses, `route show table all` the routes of both families; -j
  // prints one JSON array per command of a batch.
  const [batch, rules6, nft] = await Promise.all([
    tryRun(['ip', '-j', '-d', '-batch', '-'], ns, LINKS_ROUTES_RULES),
    tryRun(['ip', '-j', '-6', 'rule', 'show'], ns),
    tryRun(['nft', '-s', 'list', 'ruleset'], ns),
  ]);
  const [linksAndAddrs, routes, rules4] = batchOutputs(batch, 3);
  const [links, addrs] = splitLinksAndAddrs(linksAndAddrs!);
  return {
    // the bridge's timers count down by themselves
    links: dropKeys(links, ['gc_timer', 'hello_timer', 'tcn_timer', 'topology_change_timer', 'forward_delay_timer']),
    addresses: dropKeys(addrs, lifetimes),
    routes: dropKeys(routes!, lifetimes),
    'rules (IPv4)': rules4!,
    'rules (IPv6)': rules6.trim(),
    nftables: nft,
    '/var/run/netns': netns,
    mounts,
  };
}

/** Human-readable differences between two snapshots; empty when equal. */
export function diffSnapshots(before: Snapshot, after: Snapshot): string[] {
  const out: string[] = [];
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const a = before[key] ?? '';
    const b = after[key] ?? '';
    if (a === b) continue;
    const al = new Set(a.split('\n'));
    const bl = new Set(b.split('\n'));
    const gone = [...al].filter((l) => !bl.has(l)).slice(0, 10);
    const added = [...bl].filter((l) => !al.has(l)).slice(0, 10);
    out.push(`${key} changed:\n${gone.map((l) => `  - ${l}`).join('\n')}\n${added.map((l) => `  + ${l}`).join('\n')}`);
  }
  return out;
}
