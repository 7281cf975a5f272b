/**
 * A TCP echo server and client, run inside a namespace by the connectivity helpers:
 *   tcp-echo serve --port P [--host H] [--count N]   prints "listening" when ready, echoes N connections
 *   tcp-echo send --host H --port P --message M [--timeout MS]   prints the reply
 */
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
  },
});

const port = Number(values.port);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write('tcp-echo: --port must be 1..65535\n');
  process.exit(2);
}

if (positionals[0] === 'serve') {
  let left = values.count === undefined ? Infinity : Number(values.count);
  const server = net.createServer((sock) => {
    sock.pipe(sock);
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
} else {
  process.stderr.write('usage: tcp-echo serve|send --port P …\n');
  process.exit(2);
}
