/**
 * The socket's bookkeeping against a fake kernel: pipelining by sequence number, one ACK per batch, per-request
 * errors, serialized dumps, NLM_F_DUMP_INTR retries, the in-flight window.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertRejects } from '../fixtures/assert.js';
import { EventEmitter } from 'node:events';
import { NetlinkSocket } from '../../lib/netlink/socket.js';
import { MessageWriter, parseMessages, type NlMessage } from '../../lib/netlink/encoding.js';
import { NetlinkError } from '../../lib/netlink/errors.js';
import {
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_MULTI,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_NOOP,
  RTM_GETLINK,
  RTM_NEWLINK,
} from '../../lib/netlink/constants.js';

const PORT = 4242;

/** Replies the fake kernel gives to one request. */
type Handler = (m: NlMessage) => Buffer[];

class FakeRaw extends EventEmitter {
  sends: NlMessage[][] = [];
  constructor(public handle: Handler) {
    super();
  }
  address() {
    return { port: PORT, groups: 0 };
  }
  send(buf: Buffer, _opts: unknown, cb: (e?: Error) => void) {
    const msgs = parseMessages(buf);
    this.sends.push(msgs);
    const replies = msgs.flatMap((m) => this.handle(m));
    cb();
    // the kernel queues replies; each arrives as its own datagram here
    setImmediate(() => replies.forEach((r) => this.emit('message', r)));
  }
  ref() {}
  unref() {}
  close() {}
  setRecvBufferSize() {}
}

function reply(type: number, seq: number, flags: number, body: Buffer): Buffer {
  const w = new MessageWriter(type, flags);
  w.bytes(body);
  const b = w.finish();
  b.writeUInt32LE(seq, 8);
  b.writeUInt32LE(PORT, 12);
  return b;
}
const errno = (seq: number, e: number) => {
  const body = Buffer.alloc(20);
  body.writeInt32LE(-e, 0);
  return reply(NLMSG_ERROR, seq, 0x100, body);
};
const link = (seq: number, flags = 0) => reply(RTM_NEWLINK, seq, flags | NLM_F_MULTI, Buffer.alloc(16));
const done = (seq: number, flags = 0) => reply(NLMSG_DONE, seq, flags | NLM_F_MULTI, Buffer.alloc(4));
const req = (type = RTM_NEWLINK) => {
  const w = new MessageWriter(type, 0);
  w.struct(16);
  return w.finish();
};
const info = (what: string) => ({ op: 'RTM_NEWLINK', what, object: what.split(' ').pop() });
const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

/** A kernel that acks everything asked to be acked and fails requests named in `fail`. */
function kernel(fail: Map<number, number> = new Map()): Handler {
  return (m) => {
    const e = fail.get(m.seq);
    if (e) return [errno(m.seq, e)];
    return m.flags & NLM_F_ACK ? [errno(m.seq, 0)] : [];
  };
}

test('requests made together leave in one sendmsg without ACKs, followed by one NOOP barrier', async () => {
  const raw = new FakeRaw(kernel());
  const s = NetlinkSocket._overRaw(raw);
  const ps = ['a0', 'a1', 'a2'].map((n) => s.request(req(), info(`create link ${n}`)));
  await turns(1);
  const [batch] = raw.sends;
  assert.is(raw.sends.length, 1);
  assert.is(batch!.length, 4);
  assert.equal(
    batch!.slice(0, 3).map((m) => m.flags & NLM_F_ACK),
    [0, 0, 0],
  );
  assert.is(batch![3]!.type, NLMSG_NOOP);
  assert.ok(batch![3]!.flags & NLM_F_ACK);
  const seqs = batch!.map((m) => m.seq);
  assert.is(new Set(seqs).size, 4, 'distinct sequence numbers');
  assert.ok(batch!.every((m) => m.port === PORT));
  const results = await Promise.allSettled(ps);
  assert.ok(results.every((r) => r.status === 'fulfilled'));
});

test('an error answers its own request only; the barrier completes the others', async () => {
  let n = 0;
  const raw = new FakeRaw((m) => {
    n++;
    if (n === 2) return [errno(m.seq, 17)];
    return m.flags & NLM_F_ACK ? [errno(m.seq, 0)] : [];
  });
  const s = NetlinkSocket._overRaw(raw);
  const results = await Promise.allSettled(['x0', 'x1', 'x2'].map((name) => s.request(req(), info(`create link ${name}`))));
  assert.equal(
    results.map((r) => r.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );
  const e = (results[1] as PromiseRejectedResult).reason as NetlinkError;
  assert.instance(e, NetlinkError);
  assert.is(e.code, 'EEXIST');
  assert.is(e.object, 'x1');
  assert.match(e.message, /^create link x1: EEXIST/);
});

test('a request alone keeps its own ACK', async () => {
  const raw = new FakeRaw(kernel());
  const s = NetlinkSocket._overRaw(raw);
  await s.request(req(), info('one'));
  assert.is(raw.sends.length, 1);
  assert.is(raw.sends[0]!.length, 1);
  assert.ok(raw.sends[0]![0]!.flags & NLM_F_ACK);
});

test('replies to a GET are collected and returned with the request', async () => {
  const raw = new FakeRaw((m) => [reply(RTM_NEWLINK, m.seq, 0, Buffer.alloc(16)), ...(m.flags & NLM_F_ACK ? [errno(m.seq, 0)] : [])]);
  const s = NetlinkSocket._overRaw(raw);
  const [a, b] = await Promise.all([s.request(req(RTM_GETLINK), info('get a')), s.request(req(RTM_GETLINK), info('get b'))]);
  assert.is(a.length, 1);
  assert.is(b.length, 1);
  assert.is.not(a[0]!.seq, b[0]!.seq);
});

test('dumps run one at a time on a socket', async () => {
  const order: string[] = [];
  const raw = new FakeRaw((m) => {
    order.push(`send ${m.seq}`);
    return [link(m.seq), done(m.seq)];
  });
  const s = NetlinkSocket._overRaw(raw);
  const d = [s.dump(req(RTM_GETLINK), info('dump 1')), s.dump(req(RTM_GETLINK), info('dump 2')), s.dump(req(RTM_GETLINK), info('dump 3'))];
  for (let i = 0; i < 10 && raw.sends.length === 0; i++) await turns(1);
  assert.is(raw.sends.length, 1, 'the second dump waits for the first to finish');
  const all = await Promise.all(d);
  assert.is(raw.sends.length, 3);
  assert.ok(all.every((r) => r.length === 1 && r[0]!.type === RTM_NEWLINK));
  assert.ok(raw.sends.every((b) => b.length === 1 && (b[0]!.flags & NLM_F_DUMP) === NLM_F_DUMP));
});

test('a dump marked NLM_F_DUMP_INTR is retried, and gives up after a bound', async () => {
  let calls = 0;
  const raw = new FakeRaw((m) => {
    calls++;
    return calls < 3 ? [link(m.seq, NLM_F_DUMP_INTR), link(m.seq), done(m.seq, NLM_F_DUMP_INTR)] : [link(m.seq), done(m.seq)];
  });
  const s = NetlinkSocket._overRaw(raw);
  const r = await s.dump(req(RTM_GETLINK), info('dump'));
  assert.is(calls, 3, 'two interrupted dumps, then a clean one');
  assert.is(r.length, 1, "only the clean dump's entries");

  const always = new FakeRaw((m) => [link(m.seq, NLM_F_DUMP_INTR), done(m.seq)]);
  const s2 = NetlinkSocket._overRaw(always);
  await assertRejects(() => s2.dump(req(RTM_GETLINK), { op: 'RTM_GETLINK', what: 'list links' }), { code: 'EINTR' });
  assert.is(always.sends.length, 11);
});

test('at most `window` requests are in flight; the rest wait for replies', async () => {
  const raw = new FakeRaw(kernel());
  const s = NetlinkSocket._overRaw(raw, { window: 2 });
  const ps = Array.from({ length: 5 }, (_, i) => s.request(req(), info(`l${i}`)));
  await turns(1);
  assert.is(raw.sends.length, 1);
  assert.is(raw.sends[0]!.filter((m) => m.type !== NLMSG_NOOP).length, 2);
  await Promise.all(ps);
  const requests = raw.sends.flat().filter((m) => m.type !== NLMSG_NOOP).length;
  assert.is(requests, 5);
});

test('closing the socket rejects what is pending', async () => {
  const raw = new FakeRaw(() => []); // a kernel that never answers
  const s = NetlinkSocket._overRaw(raw);
  const p = s.request(req(), info('never'));
  s.close();
  await assertRejects(() => p, { message: /never: netlink socket closed/ });
});

test.run();
