/**
 * netplumbd's HTTP/1.1 API on a Unix socket (no TCP listener exists): status, health and the CNI request
 * endpoint the forwarder uses. Every connection's peer is checked (peer.ts) before anything it sends is acted on.
 *
 *   GET  /v1/health             {ok: true}
 *   GET  /v1/status             {version, pid, uptimeSeconds, plugins, networks, attachments, inFlight}
 *   POST /v1/cni/<plugin>       the CNI request (cni-endpoint.ts)
 *   …    /v1/networks…          networks and connections for the netplumb command (networks-api.ts)
 *
 * Requests for one attachment (network, container, interface) run one at a time, in the order they came;
 * everything else runs in parallel, as separate plugin processes would: the IPAM store has its own lock (polled
 * on the event loop, never held by a waiting thread), the firewall its own transactions, the kernel its own.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { handle, type CniPlugin } from '../cni/skeleton.js';
import { parseRequest } from '../cni/request.js';
import { CNI_ERR, CniError } from '../cni/errors.js';
import { CURRENT_VERSION } from '../cni/version.js';
import { allAttachments } from '../modes/state.js';
import { mark, timingRequest } from '../modes/timing.js';
import {
  ENV_LENGTH_HEADER,
  EXIT_STATUS_HEADER,
  MAX_CARRIED_STDIN_BYTES,
  MAX_ENV_BYTES,
  parseEnvBlock,
  STDERR_HEADER,
  stderrHeader,
  stdinReader,
} from './cni-endpoint.js';
import { jsonLog, type AgentLog } from './log.js';
import { isAllowed, isDiminishedRoot, peerOf, sameView, type Peer } from './peer.js';
import { DEFAULT_DATA_DIR } from '../ipam/config.js';
import { rememberStores } from '../ipam/store.js';
import { AGENT_PLUGINS, agentPlugin } from './plugins.js';
import { claimSocketPath, type ClaimedPath } from './socket-path.js';
import { forgetRequest, forgetUnlisted, keepRequest, type KeptRequest } from './attachments.js';
import { startCleanup } from './cleanup.js';
import { ApiError, apiErrorOf, networksRoute } from './networks-api.js';
import { ERR } from '../errors.js';

/**
 * Settings the plugins' modules read from their process environment (fault injection, timing lines, the nft
 * backend): a request that sets one differently from the agent is answered "run it in process" (421).
 */
const PER_PROCESS_SETTINGS = ['NETPLUMB_FAULT', 'NETPLUMB_TIMING', 'NETPLUMB_NFT_BACKEND'];

/**
 * The plugins whose ADDs are kept for cleanup.ts: every one that leaves something behind a vanished namespace —
 * bridge and overlay (through bridge) a lease, nft elements and a record; none and container a record (and
 * container perhaps its bind mount); host-local, exec'd as another plugin's IPAM, a lease. netplumb-host
 * creates nothing, and the namespace it is given is the agent's own, which does not vanish.
 */
const KEEPS_REQUESTS = new Set(['netplumb-bridge', 'netplumb-overlay', 'netplumb-none', 'netplumb-container', 'netplumb-host-local']);

export const DEFAULT_SOCKET = '/run/netplumb/netplumbd.sock';

/** Limits on what one client may cost the agent. */
export const LIMITS = {
  /** request line and headers */
  maxHeaderBytes: 16 * 1024,
  /** connections open at once (more are closed at accept) */
  maxConnections: 256,
  /** the whole request must arrive within this time */
  requestTimeoutMs: 30_000,
  headersTimeoutMs: 10_000,
  /** an idle kept-alive connection is closed after this */
  keepAliveTimeoutMs: 5_000,
  /** a JSON body (other than the CNI endpoint's) */
  maxJsonBodyBytes: 64 * 1024,
};

export interface AgentOptions {
  /** the socket path (default /run/netplumb/netplumbd.sock) */
  socket?: string;
  /** the group whose members may use the agent besides root (a name or a gid); default: root only */
  group?: string | number;
  /** how long after a container's namespace vanished the agent waits for a DEL before running it (default 10 s) */
  cleanupGraceMs?: number;
  /** the package version, for /v1/status */
  version?: string;
  log?: AgentLog;
}

export interface Agent {
  readonly socket: string;
  /** stops accepting, finishes what is in flight, removes the socket; resolves when done */
  close(): Promise<void>;
  /** requests being served now */
  readonly inFlight: number;
}

const peers = new WeakMap<Socket, Peer>();

interface RequestContext {
  id: string;
  peer: Peer;
  log: AgentLog;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const b = Buffer.from(`${JSON.stringify(body)}\n`);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': b.length });
  res.end(b);
}

/** Reads a request body of at most `keep` bytes kept and `max` bytes in all; undefined when it exceeds `max`. */
function readBody(req: IncomingMessage, keep: number, max: number): Promise<{ kept: Buffer; total: number } | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let kept = 0;
    let total = 0;
    req.on('data', (c: Buffer) => {
      total += c.length;
      if (total > max) {
        req.removeAllListeners('data');
        req.resume();
        resolve(undefined);
        return;
      }
      if (kept < keep) {
        const part = c.subarray(0, keep - kept);
        chunks.push(part);
        kept += part.length;
      }
    });
    req.once('end', () => resolve({ kept: Buffer.concat(chunks, kept), total }));
    req.once('error', reject);
  });
}

/** A queue per key: `run` waits for the previous task of the same key. */
class KeyedQueue {
  readonly #tails = new Map<string, Promise<unknown>>();
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    const p = prev.then(task, task);
    const tail = p.catch(() => undefined);
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return p;
  }
}

/** The paths a request names that must mean the same for the caller and the agent: CNI_NETNS, the IPAM store, /run. */
function pathsOf(env: Record<string, string>, stdin: Buffer): string[] {
  const paths = ['/', '/run', '/var/run/netns', DEFAULT_DATA_DIR];
  if (env.CNI_NETNS) paths.push(env.CNI_NETNS);
  try {
    const dataDir = JSON.parse(stdin.toString('utf8'))?.ipam?.dataDir;
    if (typeof dataDir === 'string') paths.push(dataDir);
  } catch {
    /* the plugin reports it */
  }
  return paths;
}

/** The queue a request waits in: one per attachment (GC and STATUS, which name no container, per network). */
function queueKey(env: Readonly<Record<string, string | undefined>>, network: string): string {
  return [network, env.CNI_CONTAINERID ?? '', env.CNI_IFNAME ?? ''].join('\0');
}

/** A successful GC's valid attachments, as `containerID\0ifname`, read as the plugin read them. */
function validAttachmentsOf(plugin: CniPlugin, env: Record<string, string>, stdin: Buffer): Set<string> {
  return new Set((parseRequest(env, stdin, undefined, plugin.fields).validAttachments ?? []).map((a) => `${a.containerId}\0${a.ifname}`));
}

function networkOf(stdin: Buffer): string {
  try {
    const name = JSON.parse(stdin.toString('utf8'))?.name;
    return typeof name === 'string' ? name : '';
  } catch {
    return '';
  }
}

async function serveCni(
  req: IncomingMessage,
  res: ServerResponse,
  pluginName: string,
  ctx: RequestContext,
  queue: KeyedQueue,
  track: (k: KeptRequest) => Promise<void>,
): Promise<void> {
  const started = process.hrtime.bigint();
  const steps = timingRequest();
  const plugin = await agentPlugin(pluginName);
  if (plugin === undefined) return sendJson(res, 404, { message: `no plugin named ${JSON.stringify(pluginName)} in this agent (${AGENT_PLUGINS.join(', ')})` });
  const envLenText = req.headers[ENV_LENGTH_HEADER];
  const envLen = typeof envLenText === 'string' && /^\d{1,9}$/.test(envLenText) ? Number(envLenText) : -1;
  if (envLen < 0 || envLen > MAX_ENV_BYTES) return sendJson(res, 400, { message: `${ENV_LENGTH_HEADER} must be a byte count of at most ${MAX_ENV_BYTES}` });
  const body = await readBody(req, envLen + MAX_CARRIED_STDIN_BYTES, envLen + MAX_CARRIED_STDIN_BYTES);
  if (body === undefined) return sendJson(res, 413, { message: 'request body too large' });
  if (body.total < envLen) return sendJson(res, 400, { message: 'request body shorter than its environment' });
  const env = parseEnvBlock(body.kept.subarray(0, envLen));
  const knob = PER_PROCESS_SETTINGS.find((k) => env[k] !== undefined && env[k] !== (process.env[k] ?? ''));
  if (knob !== undefined) {
    // The agent's modules read these once from its own environment: honour the caller's by running in process.
    return sendJson(res, 421, { message: `${knob} differs from the agent's: run the plugin in process` });
  }
  const stdin = body.kept.subarray(envLen);
  const network = networkOf(stdin);
  if (!sameView(ctx.peer, pathsOf(env, stdin))) {
    ctx.log('misdirected', {
      id: ctx.id,
      plugin: pluginName,
      reason: "paths differ between the caller's mount namespace and the agent's",
      peer: { pid: ctx.peer.pid, uid: ctx.peer.uid },
    });
    return sendJson(res, 421, { message: 'CNI_NETNS or the IPAM store is another file for the caller than for the agent: run the plugin in process' });
  }
  mark('receive');
  const outcome = await queue.run(queueKey(env, network), () => handle(plugin, env, { readStdin: stdinReader(stdin, body.total - envLen) }));
  mark('answer');
  if (KEEPS_REQUESTS.has(pluginName) && outcome.exitCode === 0) {
    try {
      if (env.CNI_COMMAND === 'ADD') {
        const kept = keepRequest(pluginName, env, stdin, network);
        // Before answering: tracking opens the namespace file for a moment, and a runtime that unmounts it as soon
        // as it has the answer would find the mount busy.
        if (kept) await track(kept);
      }
      if (env.CNI_COMMAND === 'DEL') forgetRequest(pluginName, env, network);
      // a GC of a plugin that collects (overlay's does not: its kept requests stay for the cleanup)
      if (env.CNI_COMMAND === 'GC' && plugin.gc !== undefined) forgetUnlisted(pluginName, network, validAttachmentsOf(plugin, env, stdin));
    } catch (e) {
      // The answer stands; only a later cleanup of this attachment is lost.
      ctx.log('keep-request-failed', { id: ctx.id, message: (e as Error).message });
    }
    mark('keep');
  }
  const out = Buffer.from(outcome.stdout);
  const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': out.length, [EXIT_STATUS_HEADER]: outcome.exitCode };
  if (outcome.stderr) headers[STDERR_HEADER] = stderrHeader(outcome.stderr);
  res.writeHead(200, headers);
  res.end(out);
  ctx.log('request', {
    id: ctx.id,
    plugin: pluginName,
    verb: env.CNI_COMMAND ?? '',
    container: env.CNI_CONTAINERID ?? '',
    network,
    durationMs: Number(process.hrtime.bigint() - started) / 1e6,
    outcome: outcome.exitCode === 0 ? 'ok' : 'error',
    code: outcome.error?.cniCode,
    message: outcome.error?.message,
    peer: { pid: ctx.peer.pid, uid: ctx.peer.uid },
    steps: steps(),
  });
}

function status(version: string, startedAt: number, inFlight: number): unknown {
  const records = allAttachments();
  return {
    version,
    cniVersion: CURRENT_VERSION,
    pid: process.pid,
    uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
    plugins: AGENT_PLUGINS,
    networks: [...new Set(records.map((r) => r.network))].sort(),
    attachments: records.length,
    inFlight,
  };
}

/**
 * Starts an agent: claims the socket path (socket-path.ts), listens, serves until close().
 * Throws AgentStartError when the path is unsafe or in use.
 */
export async function startAgent(opts: AgentOptions = {}): Promise<Agent> {
  const socketPath = opts.socket ?? DEFAULT_SOCKET;
  const log = opts.log ?? jsonLog();
  const version = opts.version ?? '0.0.0';
  const gid = opts.group === undefined ? undefined : typeof opts.group === 'number' ? opts.group : (await import('./peer.js')).groupId(opts.group);
  // Warm before listening: the first request should not pay for loading the plugins' modules.
  await Promise.all(AGENT_PLUGINS.map(agentPlugin));
  // A resident process can remember each IPAM store between requests: an ADD or DEL then costs the same with
  // 300 containers attached as with none (plugin execs read every reservation, as host-local does).
  await rememberStores();
  const claimed: ClaimedPath = await claimSocketPath(socketPath, gid);
  const startedAt = Date.now();
  const queue = new KeyedQueue();
  let inFlight = 0;
  let seq = 0;
  const idPrefix = randomBytes(3).toString('hex');

  // Before listening: the sweep of what vanished while no agent ran does not wait for a first request.
  const cleanup = startCleanup({
    graceMs: opts.cleanupGraceMs ?? 10_000,
    log,
    async release(k) {
      const plugin = await agentPlugin(k.plugin);
      if (plugin === undefined) return false;
      const stdin = Buffer.from(k.stdin, 'base64');
      const env = { ...k.env, CNI_COMMAND: 'DEL', CNI_NETNS: '' };
      const network = networkOf(stdin);
      const o = await queue.run(queueKey(env, network), () => handle(plugin, env, { readStdin: async () => stdin }));
      if (o.exitCode === 0) forgetRequest(k.plugin, env, network);
      return o.exitCode === 0;
    },
  });

  const server: Server = createServer(
    {
      maxHeaderSize: LIMITS.maxHeaderBytes,
      requestTimeout: LIMITS.requestTimeoutMs,
      headersTimeout: LIMITS.headersTimeoutMs,
      keepAliveTimeout: LIMITS.keepAliveTimeoutMs,
    },
    (req, res) => {
      const peer = peers.get(req.socket);
      const ctx: RequestContext = { id: `${idPrefix}-${++seq}`, peer: peer!, log };
      inFlight++;
      res.once('close', () => inFlight--);
      void route(req, res, ctx).catch((e: unknown) => {
        log('internal-error', { id: ctx.id, message: e instanceof Error ? e.message : String(e) });
        if (!res.headersSent) sendJson(res, 500, { message: 'internal error' });
        else res.destroy();
      });
    },
  );
  server.maxConnections = LIMITS.maxConnections;

  async function route(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> {
    const url = req.url ?? '';
    const cni = /^\/v1\/cni\/([a-z0-9-]{1,64})$/.exec(url);
    if (cni && req.method === 'POST' && (!ctx.peer.sameNamespaces || isDiminishedRoot(ctx.peer))) {
      // Not an error: the caller's forwarder runs the plugin where the caller is, with what the caller holds.
      req.resume();
      const why = ctx.peer.sameNamespaces ? 'caller is root with fewer capabilities than the agent' : 'caller in other namespaces';
      log('misdirected', { id: ctx.id, plugin: cni[1], reason: why, peer: { pid: ctx.peer.pid, uid: ctx.peer.uid } });
      return sendJson(res, 421, { message: `${why}: run the plugin in process` });
    }
    if (!isAllowed(ctx.peer, gid)) {
      log('refused', { id: ctx.id, reason: 'peer not allowed', peer: { pid: ctx.peer.pid, uid: ctx.peer.uid, gid: ctx.peer.gid }, url: url.slice(0, 128) });
      const msg = `netplumbd: uid ${ctx.peer.uid} may not use this agent (only root${gid === undefined ? '' : ` and members of group ${gid}`})`;
      req.resume();
      const err = new CniError(CNI_ERR.NOT_PERMITTED, msg);
      const b = Buffer.from(`${JSON.stringify(err.toJSON(CURRENT_VERSION), null, 4)}\n`);
      res.writeHead(403, { 'content-type': 'application/json', 'content-length': b.length, [EXIT_STATUS_HEADER]: 1, connection: 'close' });
      res.end(b);
      return;
    }
    if (cni && req.method === 'POST') return serveCni(req, res, cni[1]!, ctx, queue, (k) => cleanup.track(k));
    if (url.startsWith('/v1/networks')) return serveNetworks(req, res, ctx);
    req.resume();
    if (req.method === 'GET' && url === '/v1/health') return sendJson(res, 200, { ok: true });
    if (req.method === 'GET' && url === '/v1/status') return sendJson(res, 200, status(version, startedAt, inFlight));
    return sendJson(res, 404, { message: `no such endpoint: ${req.method} ${url.slice(0, 128)}` });
  }

  /** The network routes (networks-api.ts), for callers whose view of the machine is the agent's own. */
  async function serveNetworks(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> {
    const started = process.hrtime.bigint();
    if (!ctx.peer.sameNamespaces || !ctx.peer.sameMountNamespace || isDiminishedRoot(ctx.peer)) {
      req.resume();
      return sendJson(res, 421, {
        message: 'the caller is in other namespaces or holds fewer capabilities than the agent: act in process',
        code: ERR.MISDIRECTED,
      });
    }
    const body = async () => {
      const b = await readBody(req, LIMITS.maxJsonBodyBytes, LIMITS.maxJsonBodyBytes);
      if (b === undefined) throw new ApiError(413, 'request body too large', ERR.TOO_LARGE);
      try {
        return JSON.parse(b.kept.toString('utf8')) as unknown;
      } catch {
        throw new ApiError(400, 'the body is not JSON', ERR.INVALID_ARG_VALUE);
      }
    };
    let status: number;
    let answer: unknown;
    try {
      const r = await queue.run('\0networks', () => networksRoute(req.method ?? '', req.url ?? '', body));
      [status, answer] = r ?? [404, { message: `no such endpoint: ${req.url?.slice(0, 128)}`, code: ERR.NOT_FOUND }];
    } catch (e) {
      const err = apiErrorOf(e);
      [status, answer] = [err.status, { message: err.message, code: err.code }];
    }
    req.resume();
    sendJson(res, status, answer);
    log('request', {
      id: ctx.id,
      verb: `${req.method} ${(req.url ?? '').slice(0, 128)}`,
      durationMs: Number(process.hrtime.bigint() - started) / 1e6,
      outcome: status < 400 ? 'ok' : 'error',
      status,
      peer: { pid: ctx.peer.pid, uid: ctx.peer.uid },
    });
  }

  server.on('connection', (sock: Socket) => {
    const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    const refuse = (why: string) => {
      log('refused', { reason: `peer credentials unavailable: ${why}` });
      sock.destroy();
    };
    if (typeof fd !== 'number' || fd < 0) return refuse('no descriptor');
    try {
      peers.set(sock, peerOf(fd));
    } catch (e) {
      refuse((e as Error).message);
    }
  });
  server.on('clientError', (err: NodeJS.ErrnoException, sock: Socket) => {
    log('client-error', { code: err.code, message: err.message });
    if (sock.writable) sock.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else sock.destroy();
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    cleanup.stop();
    throw e;
  }
  claimed.protect();
  log('start', { socket: socketPath, pid: process.pid, version, group: gid ?? null });

  let closing: Promise<void> | undefined;
  return {
    socket: socketPath,
    get inFlight() {
      return inFlight;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        log('stopping', { inFlight });
        server.close(() => {
          cleanup.stop();
          claimed.release();
          log('stop', {});
          resolve();
        });
        server.closeIdleConnections();
        // Connections kept alive after their last answer would hold close() open: end each once it is idle.
        const t = setInterval(() => server.closeIdleConnections(), 100);
        server.once('close', () => clearInterval(t));
      });
      return closing;
    },
  };
}
