/**
 * Sends hand-made Ethernet frames out of an interface (AF_PACKET), run inside a namespace by
 * `sendRawFrames()`: forged source MACs and addresses, ARP and IP, exactly as given.
 *   raw-frame --dev eth0 HEX [HEX …]
 */
import koffi from 'koffi';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { dev: { type: 'string' } } });
const fail = (msg: string): never => {
  process.stderr.write(`raw-frame: ${msg}\n`);
  process.exit(1);
};
if (!values.dev || positionals.length === 0) fail('usage: raw-frame --dev IFNAME HEX…');

const AF_PACKET = 17;
const SOCK_RAW = 3;
const ETH_P_ALL_BE = 0x0300; // htons(0x0003)

const libc = koffi.load('libc.so.6');
const SockaddrLl = koffi.struct('sockaddr_ll', {
  sll_family: 'uint16_t',
  sll_protocol: 'uint16_t',
  sll_ifindex: 'int32_t',
  sll_hatype: 'uint16_t',
  sll_pkttype: 'uint8_t',
  sll_halen: 'uint8_t',
  sll_addr: koffi.array('uint8_t', 8),
});
const socket = libc.func('int socket(int domain, int type, int protocol)');
const ifNametoindex = libc.func('unsigned int if_nametoindex(const char *name)');
const sendto = libc.func('long sendto(int fd, const uint8_t *buf, size_t len, int flags, const sockaddr_ll *addr, uint32_t addrlen)');
const close = libc.func('int close(int fd)');

const ifindex = ifNametoindex(values.dev!) as number;
if (ifindex === 0) fail(`no interface ${values.dev}`);
const fd = socket(AF_PACKET, SOCK_RAW, ETH_P_ALL_BE) as number;
if (fd < 0) fail(`socket(AF_PACKET): errno ${koffi.errno()}`);
for (const hex of positionals) {
  const frame = Buffer.from(hex, 'hex');
  const addr = {
    sll_family: AF_PACKET,
    sll_protocol: ETH_P_ALL_BE,
    sll_ifindex: ifindex,
    sll_hatype: 0,
    sll_pkttype: 0,
    sll_halen: 6,
    sll_addr: [...frame.subarray(0, 6), 0, 0],
  };
  const n = sendto(fd, frame, frame.length, 0, addr, koffi.sizeof(SockaddrLl)) as number;
  if (n !== frame.length) fail(`sendto: ${n} (errno ${koffi.errno()})`);
}
close(fd);
process.stdout.write(`sent ${positionals.length}\n`);
