/**
 * The few etcd v3 calls the overlay needs (range, transaction, delete, lease grant/keep-alive/revoke, watch),
 * spoken to etcd's JSON gateway (grpc-gateway: POST /v3/..., keys and values in base64) over Node's http and
 * https modules. Why not the `etcd3` package: it brings gRPC (@grpc/grpc-js, proto-loader, ~10 MB) into the
 * agent's start-up for six calls, and the gateway is part of every etcd server since 3.3 (Debian's 3.4
 * included). Why not fetch: Node's fetch cannot be given a CA or a client certificate without the undici
 * package; an https.Agent can, and keeps connections alive as fetch did.
 * Every call is bounded by a timeout; a failure is an EtcdError naming the endpoint (and TLS, when the
 * handshake is what failed).
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { ERR, NetplumbError } from '../../errors.js';
import type { EtcdTls } from './etcd-tls.js';

/** A key-value pair as etcd stores it (key and value decoded to text). */
export interface EtcdKv {
  key: string;
  value: string;
  modRevision: number;
  createRevision: number;
  lease: string | undefined;
}

/** A change seen by a watch. */
export interface EtcdEvent {
  type: 'put' | 'delete';
  kv: EtcdKv;
}

/** etcd unreachable, or an answer that is not what was asked for: code ERR_ETCD, `object` the endpoints. */
export class EtcdError extends NetplumbError {
  constructor(message: string, object?: string) {
    super(message, { code: ERR.ETCD, op: 'etcd', object });
  }
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString('utf8') : '');

/** The key just after every key that starts with `prefix` (etcd's `range_end` for a prefix). */
function prefixEnd(prefix: string): string {
  const b = Buffer.from(prefix, 'utf8');
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      const end = Buffer.from(b.subarray(0, i + 1));
      end[i]! += 1;
      return end.toString('base64');
    }
  }
  return Buffer.from([0]).toString('base64');
}

/** A key-value pair as the gateway writes it (numbers as strings, bytes as base64). */
interface WireKv {
  key?: string;
  value?: string;
  mod_revision?: string;
  create_revision?: string;
  lease?: string;
}

/** Whatever JSON the gateway answers; only the fields read are declared. */
interface WireAnswer {
  [k: string]: unknown;
  message?: string;
  error?: { message?: string } | string;
  header?: { revision?: string };
  kvs?: WireKv[];
  ID?: string;
  TTL?: string;
  succeeded?: boolean;
  result?: { TTL?: string; canceled?: boolean; cancel_reason?: string; events?: { type?: string; kv?: WireKv }[] };
}

function toKv(kv: WireKv): EtcdKv {
  return {
    key: unb64(kv.key),
    value: unb64(kv.value),
    modRevision: Number(kv.mod_revision ?? 0),
    createRevision: Number(kv.create_revision ?? 0),
    lease: kv.lease && kv.lease !== '0' ? String(kv.lease) : undefined,
  };
}

/** `http(s)://HOST:PORT` (an IPv6 host in brackets), with or without a final slash. */
export const ETCD_ENDPOINT = /^https?:\/\/[^/\s]+\/?$/;

export interface EtcdClientOptions {
  /** `http(s)://HOST:PORT`, tried in order */
  endpoints: string[];
  /** for https endpoints: the CA that signed the server's certificate (else the system's), a client certificate */
  tls?: EtcdTls | undefined;
  /** per call (default 3000 ms) */
  timeoutMs?: number;
}

/** Node's codes for a TLS handshake that failed: the peer's alert (`ERR_SSL_…`), a certificate not trusted. */
const TLS_FAILURE = /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|SELF_SIGNED_|DEPTH_ZERO_|EPROTO$)/;
/** The server's alert when it wants a client certificate and got none, or one of a CA it does not trust. */
const CLIENT_CERT_REFUSED = /ALERT_(BAD_CERTIFICATE|CERTIFICATE_REQUIRED|UNKNOWN_CA|CERTIFICATE_UNKNOWN|ACCESS_DENIED)$/;
/** Our side's verdict on the server's certificate. */
const SERVER_CERT_UNTRUSTED = /^(CERT_|UNABLE_TO_|SELF_SIGNED_|DEPTH_ZERO_)/;

/** What went wrong talking to `ep`, in words that name etcd (and TLS, and whose certificate, when the handshake failed). */
function unreachable(ep: string, what: string, e: unknown): EtcdError {
  if (e instanceof EtcdError) return e;
  const err = e as NodeJS.ErrnoException & { reason?: string };
  const code = err?.code ?? '';
  if (ep.startsWith('https:') && TLS_FAILURE.test(code)) {
    // OpenSSL's own message is a line of internals; its reason is the part a person can read
    const why = `${err.reason ?? err.message} (${code})`;
    const whose = CLIENT_CERT_REFUSED.test(code)
      ? ': etcd refused the client certificate (none was given, or it is not of a CA etcd trusts: etcd.certFile, etcd.keyFile)'
      : SERVER_CERT_UNTRUSTED.test(code)
        ? ": etcd's server certificate is not trusted (is etcd.caFile the CA that signed it?)"
        : '';
    return new EtcdError(`etcd ${ep}: TLS handshake failed: ${what}: ${why}${whose}`, ep);
  }
  const detail = `${err?.message ?? e}${code && !String(err?.message).includes(code) ? ` (${code})` : ''}`;
  return new EtcdError(`etcd unreachable (${ep}): ${what}: ${detail}`, ep);
}

/** A client of one etcd cluster, by its endpoints. */
export class EtcdClient {
  readonly endpoints: string[];
  readonly timeoutMs: number;
  // connections are kept alive between calls (the watch holds one of its own)
  readonly #http = new HttpAgent({ keepAlive: true });
  readonly #https: HttpsAgent;

  constructor(o: EtcdClientOptions) {
    if (o.endpoints.length === 0) throw new EtcdError('etcd: no endpoints given');
    for (const e of o.endpoints) if (!ETCD_ENDPOINT.test(e)) throw new EtcdError(`etcd: endpoint ${JSON.stringify(e)} is not http(s)://HOST:PORT`);
    this.endpoints = o.endpoints.map((e) => e.replace(/\/$/, ''));
    this.timeoutMs = o.timeoutMs ?? 3000;
    this.#https = new HttpsAgent({ keepAlive: true, ...o.tls });
  }

  /** POSTs `body` to `url`; resolves the answer once its headers arrived (its body still to be read). */
  #post(url: string, body: unknown, signal: AbortSignal): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const u = new URL(url);
      const https = u.protocol === 'https:';
      const req = (https ? httpsRequest : httpRequest)(
        u,
        { method: 'POST', agent: https ? this.#https : this.#http, signal, headers: { 'content-type': 'application/json' } },
        resolve,
      );
      // `on`, not `once`: an abort after the answer began must find a listener too
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
  }

  /** One call, to the first endpoint that answers. */
  async call(path: string, body: unknown): Promise<WireAnswer> {
    const errors: EtcdError[] = [];
    for (const ep of this.endpoints) {
      const signal = AbortSignal.timeout(this.timeoutMs);
      try {
        const r = await this.#post(`${ep}${path}`, body, signal);
        let text = '';
        r.setEncoding('utf8');
        for await (const chunk of r) text += chunk;
        const json = (text ? JSON.parse(text) : {}) as WireAnswer;
        if (r.statusCode !== 200) throw new EtcdError(`etcd ${ep}${path}: ${r.statusCode} ${json.message ?? text}`, ep);
        return json;
      } catch (e) {
        errors.push(signal.aborted ? new EtcdError(`etcd unreachable (${ep}): ${path}: no answer within ${this.timeoutMs} ms`, ep) : unreachable(ep, path, e));
      }
    }
    // each message names its endpoint
    throw errors.length === 1 ? errors[0]! : new EtcdError(errors.map((e) => e.message).join('; '), this.endpoints.join(','));
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.#http.destroy();
    this.#https.destroy();
  }

  /** Every key under `prefix`, and the store's revision when read. */
  async getPrefix(prefix: string): Promise<{ kvs: EtcdKv[]; revision: number }> {
    const r = await this.call('/v3/kv/range', { key: b64(prefix), range_end: prefixEnd(prefix) });
    return { kvs: (r.kvs ?? []).map(toKv), revision: Number(r.header?.revision ?? 0) };
  }

  /** Grants a lease of `ttl` seconds; resolves its id. */
  async grantLease(ttl: number): Promise<string> {
    const r = await this.call('/v3/lease/grant', { TTL: ttl });
    if (!r.ID) throw new EtcdError('etcd: lease grant answered without an ID');
    return String(r.ID);
  }

  /** Renews a lease; resolves the seconds left, 0 when the lease is gone. */
  async keepAlive(id: string): Promise<number> {
    const r = await this.call('/v3/lease/keepalive', { ID: id });
    return Number(r.result?.TTL ?? 0);
  }

  /** Revokes a lease: its keys go at once. */
  async revokeLease(id: string): Promise<void> {
    await this.call('/v3/lease/revoke', { ID: id });
  }

  /**
   * Puts `key` = `value` under `lease` only if the key is absent (`modRevision` 0) or unchanged since
   * `modRevision`; resolves whether it did.
   */
  async putIf(key: string, value: string, lease: string, modRevision: number): Promise<boolean> {
    const r = await this.call('/v3/kv/txn', {
      compare: [{ key: b64(key), result: 'EQUAL', target: 'MOD', mod_revision: String(modRevision) }],
      success: [{ request_put: { key: b64(key), value: b64(value), lease } }],
    });
    return r.succeeded === true;
  }

  /** Puts `key` = `value` under `lease`. */
  async put(key: string, value: string, lease: string): Promise<void> {
    await this.call('/v3/kv/put', { key: b64(key), value: b64(value), lease });
  }

  /** Deletes `key`. */
  async delete(key: string): Promise<void> {
    await this.call('/v3/kv/deleterange', { key: b64(key) });
  }

  /**
   * Watches every key under `prefix` from `revision` on, calling `onEvents` for each batch, until `signal`
   * fires (resolves) or the stream breaks (rejects: the caller lists again and watches anew).
   */
  async watchPrefix(prefix: string, revision: number, onEvents: (events: EtcdEvent[]) => void, signal: AbortSignal): Promise<void> {
    const ep = this.endpoints[0]!;
    let r: IncomingMessage;
    try {
      r = await this.#post(`${ep}/v3/watch`, { create_request: { key: b64(prefix), range_end: prefixEnd(prefix), start_revision: String(revision) } }, signal);
    } catch (e) {
      if (signal.aborted) return;
      throw unreachable(ep, 'watch', e);
    }
    if (r.statusCode !== 200) {
      r.resume();
      throw new EtcdError(`etcd ${ep}/v3/watch: ${r.statusCode}`, ep);
    }
    let buf = '';
    r.setEncoding('utf8');
    try {
      for await (const chunk of r as AsyncIterable<string>) {
        buf += chunk;
        // the gateway writes one JSON object per line
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          const msg = JSON.parse(line) as WireAnswer;
          if (msg.error) throw new EtcdError(`etcd watch: ${typeof msg.error === 'string' ? msg.error : (msg.error.message ?? '')}`);
          const res = msg.result ?? {};
          if (res.canceled) throw new EtcdError(`etcd watch canceled: ${res.cancel_reason ?? ''}`);
          const events: EtcdEvent[] = (res.events ?? []).map((e) => ({ type: e.type === 'DELETE' ? 'delete' : 'put', kv: toKv(e.kv ?? {}) }));
          if (events.length) onEvents(events);
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      throw e instanceof EtcdError ? e : new EtcdError(`etcd watch broke (${ep}): ${(e as Error).message}`, ep);
    }
    if (!signal.aborted) throw new EtcdError(`etcd watch ended (${ep})`);
  }
}
