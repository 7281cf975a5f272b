/**
 * The netplumb command's client of netplumbd: one HTTP/1.1 request per call on the agent's Unix socket.
 * `openAgent()` answers undefined when no agent listens (the CLI then acts in process), and an
 * AgentClient otherwise. The routes are the agent's (lib/agent): this module knows only how to ask.
 */
import { request as httpRequest } from 'node:http';
import { ERR, NetplumbError } from '../errors.js';

/** Where netplumbd listens unless NETPLUMB_SOCKET says otherwise. */
export const AGENT_SOCKET = '/run/netplumb/netplumbd.sock';
export const AGENT_SOCKET_ENV = 'NETPLUMB_SOCKET';

/** The code of an answer that names none (a CNI error's is a number): what its HTTP status says. */
const CODE_BY_STATUS: Readonly<Record<number, string>> = {
  400: ERR.INVALID_ARG_VALUE,
  403: 'ERR_CNI_NOT_PERMITTED',
  404: ERR.NOT_FOUND,
  409: ERR.EXISTS,
};

/**
 * An error the agent answered (status ≥ 400), with its message and its code (an errno name or an `ERR_*`
 * code); an answer without one gets the code its status stands for (CODE_BY_STATUS), else ERR_AGENT.
 */
export class AgentError extends NetplumbError {
  constructor(
    message: string,
    readonly status: number,
    code: string | undefined,
    op = 'netplumbd',
  ) {
    super(message, { code: code ?? CODE_BY_STATUS[status] ?? ERR.AGENT, op });
  }
}

export interface AgentClient {
  readonly socket: string;
  /** Sends one request with an optional JSON body; resolves with the parsed JSON answer (undefined when empty). */
  request<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
}

function send(socket: string, method: string, path: string, body: unknown, timeoutMs: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = httpRequest(
      {
        socketPath: socket,
        method,
        path,
        headers: { host: 'netplumbd', ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : {}) },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(
        new NetplumbError(`netplumbd at ${socket} did not answer within ${timeoutMs} ms`, { code: ERR.TIMEOUT, op: `${method} ${path}`, object: socket }),
      ),
    );
    req.on('error', reject);
    req.end(data);
  });
}

/** A client for the agent at `socket`, or undefined when nothing answers there (no agent: act in process). */
export async function openAgent(socket = process.env[AGENT_SOCKET_ENV] || AGENT_SOCKET): Promise<AgentClient | undefined> {
  try {
    const r = await send(socket, 'GET', '/v1/health', undefined, 2000);
    if (r.status !== 200) return undefined;
  } catch {
    return undefined;
  }
  return {
    socket,
    async request<T>(method: string, path: string, body?: unknown): Promise<T> {
      const r = await send(socket, method, path, body, 120_000);
      let json: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- the agent's JSON, narrowed by each caller
      try {
        json = r.text ? JSON.parse(r.text) : undefined;
      } catch {
        json = undefined;
      }
      if (r.status >= 400) {
        const msg = json?.message ?? json?.msg ?? json?.error ?? (r.text.trim() || `HTTP ${r.status}`);
        // string codes pass through; a CNI error's number (or none) is told by the HTTP status instead
        throw new AgentError(`netplumbd: ${msg}`, r.status, typeof json?.code === 'string' ? json.code : undefined, `${method} ${path}`);
      }
      return json as T;
    },
  };
}
