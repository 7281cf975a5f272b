/**
 * A TCP echo server and client, run inside a namespace by the connectivity helpers:
 *   tcp-echo serve --port P [--host H] [--count N] [--whoami]   prints "listening" when ready, echoes N
 *            connections (--whoami: answers each with the client's address as seen here, instead of echoing)
 *   tcp-echo send --host H --port P --message M [--timeout MS]   prints the reply
 * and the same over UDP:
 *   tcp-echo udp-serve --port P [--host H] [--whoami]   prints "listening", then "recv ADDR PORT MESSAGE" for
 *            every datagram, and answers it (echo, or the sender's address with --whoami)
 *   tcp-echo udp-send --host H --port P --message M [--timeout MS]   prints the reply
 * tcp-echo.c is the same program in C, which the helpers run instead where a C compiler is (echoHelper()); this
 * one stays for where there is none (an installed package ships no C source). A change here goes there too.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { parseArgs } from 'node:util';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    host: { type: 'string' },
    port: { type: 'string' },
    count: { type: 'string' },
    message: { type: 'string' },
    timeout: { type: 'string' },
    whoami: { type: 'boolean' },
  },
});

const port = Number(values.port);
/** The peer's address without the IPv4-mapped prefix a dual-stack socket reports. */
const plain = (addr: string | undefined) => (addr ?? '').replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write('tcp-echo: --port must be 1..65535\n');
  process.exit(2);
}

if (positionals[0] === 'serve') {
  let left = values.count === undefined ? Infinity : Number(values.count);
  const server = net.createServer((sock) => {
    if (values.whoami) {
      // Answer now; the socket closes once the client has sent its message and ended.
      sock.write(plain(sock.remoteAddress));
      sock.resume();
    } else sock.pipe(sock);
    sock.on('error', () => undefined);
    sock.on('close', () => {
      if (--left <= 0) server.close();
    });
  });
  server.listen({ port, host: values.host ?? '::', ipv6Only: false }, () => process.stdout.write('listening\n'));
} else if (positionals[0] === 'send') {
  const timeout = Number(values.timeout ?? 3000);
  const chunks: Buffer[] = [];
  const sock = net.connect({ host: values.host ?? '127.0.0.1', port, timeout });
  const fail = (msg: string) => {
    process.stderr.write(`tcp-echo: ${msg}\n`);
    process.exit(1);
  };
  const timer = setTimeout(() => fail('timed out'), timeout);
  sock.on('timeout', () => fail('timed out'));
  sock.on('error', (e) => fail(e.message));
  sock.on('connect', () => sock.end(values.message ?? 'ping'));
  sock.on('data', (d) => chunks.push(d));
  sock.on('end', () => {
    clearTimeout(timer);
    process.stdout.write(Buffer.concat(chunks));
    process.exit(0);
  });
} else if (positionals[0] === 'udp-serve') {
  const host = values.host ?? '::';
  const sock = dgram.createSocket({ type: net.isIPv4(host) ? 'udp4' : 'udp6', ipv6Only: false });
  sock.on('message', (msg, rinfo) => {
    const from = plain(rinfo.address);
    process.stdout.write(`recv ${from} ${rinfo.port} ${msg.toString().replace(/\s/g, '_')}\n`);
    sock.send(values.whoami ? Buffer.from(from) : msg, rinfo.port, rinfo.address);
  });
  sock.bind(port, host, () => process.stdout.write('listening\n'));
} else if (positionals[0] === 'udp-send') {
  const host = values.host ?? '127.0.0.1';
  const timeout = Number(values.timeout ?? 3000);
  const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  const timer = setTimeout(() => {
    process.stderr.write('tcp-echo: timed out\n');
    process.exit(1);
  }, timeout);
  sock.on('error', (e) => {
    process.stderr.write(`tcp-echo: ${e.message}\n`);
    process.exit(1);
  });
  sock.on('message', (msg) => {
    clearTimeout(timer);
    process.stdout.write(msg);
    process.exit(0);
  });
  sock.send(values.message ?? 'ping', port, host);
} else {
  process.stderr.write('usage: tcp-echo serve|send|udp-serve|udp-send --port P …\n');
  process.exit(2);
}
