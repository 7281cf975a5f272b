/** Message encoding and decoding, byte for byte, without a kernel. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MessageWriter, parseMessages, parseAttrs, eachAttr, getStr, getU32 } from '../../lib/netlink/encoding.js';
import { bytesToIp } from '../../lib/addr/ip.js';
import { bytesToMac, macToBytes } from '../../lib/addr/mac.js';
import {
  IFLA_IFNAME,
  IFLA_LINKINFO,
  IFLA_INFO_KIND,
  IFLA_INFO_DATA,
  VETH_INFO_PEER,
  IFLA_ADDRESS,
  NLMSG_ERROR,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  RTM_NEWLINK,
  RTM_NEWROUTE,
  RTA_MULTIPATH,
  RTA_GATEWAY,
  RTA_DST,
  NLMSG_DONE,
} from '../../lib/netlink/constants.js';
import { extAckMessage } from '../../lib/netlink/socket.js';
import { NetlinkError } from '../../lib/netlink/errors.js';
import { parseLink } from '../../lib/net/link.js';
import { routeMessage, parseRoute } from '../../lib/net/route.js';
import { addressMessage, parseAddress } from '../../lib/net/addr.js';
import { gratuitousArpPacket } from '../../lib/net/garp.js';

test('attributes are padded to 4 bytes and nested lengths are patched', () => {
  const w = new MessageWriter(RTM_NEWLINK, 0x405);
  w.struct(16);
  w.str(IFLA_IFNAME, 'veth0'); // 4 + 6 = 10 → padded to 12
  const li = w.nest(IFLA_LINKINFO);
  w.str(IFLA_INFO_KIND, 'veth');
  const data = w.nest(IFLA_INFO_DATA);
  const peer = w.nest(VETH_INFO_PEER);
  w.struct(16);
  w.str(IFLA_IFNAME, 'eth0');
  w.attr(IFLA_ADDRESS, macToBytes('02:00:00:00:00:01'));
  w.end(peer);
  w.end(data);
  w.end(li);
  const m = w.finish();
  assert.is(m.readUInt32LE(0), m.length, 'nlmsg_len');
  assert.is(m.readUInt16LE(4), RTM_NEWLINK);
  assert.is(m.readUInt16LE(6), 0x405);
  assert.is(m.length % 4, 0);
  // name attribute right after header+ifinfomsg: len 10, type 3, "veth0\0", 2 bytes padding
  assert.equal([...m.subarray(32, 44)], [10, 0, 3, 0, 0x76, 0x65, 0x74, 0x68, 0x30, 0, 0, 0]);
  const [msg] = parseMessages(m);
  const a = parseAttrs(msg!.data, 16);
  assert.is(getStr(a[IFLA_IFNAME]), 'veth0');
  const linkinfo = parseAttrs(a[IFLA_LINKINFO]!);
  assert.is(getStr(linkinfo[IFLA_INFO_KIND]), 'veth');
  const peerAttr = parseAttrs(linkinfo[IFLA_INFO_DATA]!)[VETH_INFO_PEER]!;
  assert.is(peerAttr.length, 16 + 12 + 12, 'ifinfomsg + name + mac');
  const pa = parseAttrs(peerAttr, 16);
  assert.is(getStr(pa[IFLA_IFNAME]), 'eth0');
  assert.is(bytesToMac(pa[IFLA_ADDRESS]!), '02:00:00:00:00:01');
});

test('several messages in one datagram are split, padding skipped', () => {
  const a = new MessageWriter(NLMSG_DONE, 2);
  a.struct(4).writeInt32LE(0, 0);
  const b = new MessageWriter(NLMSG_DONE, 2);
  b.struct(5); // odd length: padded
  const buf = Buffer.concat([a.finish(), b.finish()]);
  const msgs = parseMessages(buf);
  assert.is(msgs.length, 2);
  assert.is(msgs[0]!.data.length, 4);
  assert.is(msgs[1]!.data.length, 8);
  // a truncated trailing message is ignored rather than read past the end
  assert.is(parseMessages(buf.subarray(0, buf.length - 4)).length, 1);
});

test('an error reply with an extended ACK gives its text to NetlinkError', () => {
  const w = new MessageWriter(NLMSG_ERROR, NLM_F_ACK_TLVS | NLM_F_CAPPED);
  const s = w.struct(4 + 16);
  s.writeInt32LE(-22, 0);
  s.writeUInt32LE(64, 4); // the request's length (not included: capped)
  w.str(1, 'mtu greater than device maximum');
  w.u32(2, 40);
  const [m] = parseMessages(w.finish());
  const text = extAckMessage(m!);
  assert.is(text, 'mtu greater than device maximum');
  const e = new NetlinkError(22, { op: 'RTM_NEWLINK', what: 'set link veth0 mtu 99999', object: 'veth0' }, text);
  assert.is(e.code, 'EINVAL');
  assert.is(e.message, 'set link veth0 mtu 99999: EINVAL (Invalid argument): mtu greater than device maximum');
  // an uncapped error carries the whole request before the TLVs
  const u = new MessageWriter(NLMSG_ERROR, NLM_F_ACK_TLVS);
  const us = u.struct(4 + 24);
  us.writeInt32LE(-17, 0);
  us.writeUInt32LE(24, 4);
  u.str(1, 'exists');
  assert.is(extAckMessage(parseMessages(u.finish())[0]!), 'exists');
  const plain = new MessageWriter(NLMSG_ERROR, 0);
  plain.struct(20).writeInt32LE(-19, 0);
  assert.is(extAckMessage(parseMessages(plain.finish())[0]!), undefined);
  assert.match(new NetlinkError(19, { op: 'RTM_DELLINK', what: 'delete link x0', object: 'x0' }).message, /^delete link x0: ENODEV \(No such device\)$/);
});

test('a link message decodes into a typed veth with flags, stats and peer', () => {
  const w = new MessageWriter(RTM_NEWLINK, 0);
  const s = w.struct(16);
  s.writeInt32LE(7, 4);
  s.writeUInt32LE(0x1 | 0x10000 | 0x1000, 8); // UP, LOWER_UP, MULTICAST
  w.str(IFLA_IFNAME, 'veth7');
  w.u32(4, 1450); // MTU
  w.attr(IFLA_ADDRESS, macToBytes('aa:bb:cc:dd:ee:ff'));
  w.u32(10, 3); // master
  w.u32(5, 2); // link: the peer
  w.s32(37, 0); // link netnsid
  w.u8(16, 6); // operstate up
  const stats = Buffer.alloc(8 * 24);
  stats.writeBigUInt64LE(5n, 0);
  stats.writeBigUInt64LE(1234n, 8 * 3);
  w.attr(23, stats);
  const li = w.nest(IFLA_LINKINFO);
  w.str(IFLA_INFO_KIND, 'veth');
  w.end(li);
  const l = parseLink(parseMessages(w.finish())[0]!);
  assert.is(l.kind, 'veth');
  if (l.kind !== 'veth') return;
  assert.equal(
    [l.index, l.name, l.mtu, l.mac, l.masterIndex, l.peerIndex, l.linkNetnsId, l.operstate, l.up, l.lowerUp, l.promisc],
    [7, 'veth7', 1450, 'aa:bb:cc:dd:ee:ff', 3, 2, 0, 'up', true, true, false],
  );
  assert.equal([l.stats!.rxPackets, l.stats!.txBytes], [5, 1234]);
});

test('a multipath route encodes rtnexthop records and decodes back', async () => {
  const msg = await routeMessage(undefined as never, RTM_NEWROUTE, 0, {
    dst: '100.64.0.0/16',
    multipath: [
      { gateway: '10.3.0.1', link: 4, weight: 1 },
      { gateway: '10.4.0.1', link: 5, weight: 3, onlink: true },
    ],
  });
  const [m] = parseMessages(msg);
  const d = m!.data;
  assert.equal([d[0], d[1], d[4], d[5], d[6], d[7]], [2, 16, 254, 3, 0, 1], 'AF_INET /16 main boot universe unicast');
  const a = parseAttrs(d, 12);
  assert.is(bytesToIp(a[RTA_DST]!), '100.64.0.0');
  const mp = a[RTA_MULTIPATH]!;
  assert.is(mp.length, 2 * (8 + 8));
  assert.equal([mp.readUInt16LE(0), mp[2], mp[3], mp.readInt32LE(4)], [16, 0, 0, 4]);
  assert.equal([mp.readUInt16LE(16), mp[18], mp[19], mp.readInt32LE(20)], [16, 4, 2, 5]);
  let gws: string[] = [];
  eachAttr(mp.subarray(8, 16), (t, v) => t === RTA_GATEWAY && gws.push(bytesToIp(v)));
  assert.equal(gws, ['10.3.0.1']);
  const r = parseRoute(m!);
  assert.equal(r.multipath, [
    { gateway: '10.3.0.1', linkIndex: 4, weight: 1, onlink: false },
    { gateway: '10.4.0.1', linkIndex: 5, weight: 3, onlink: true },
  ]);
  assert.is(r.dst, '100.64.0.0/16');
  gws = [];
});

test('route defaults follow iproute2: link scope without gateway, host scope and local table for local', async () => {
  const direct = parseMessages(await routeMessage(undefined as never, RTM_NEWROUTE, 0, { dst: '10.1.0.0/24', link: 3 }))[0]!.data;
  assert.is(direct[6], 253);
  const local = parseMessages(await routeMessage(undefined as never, RTM_NEWROUTE, 0, { dst: '10.1.0.7', type: 'local', link: 3 }))[0]!.data;
  assert.equal([local[1], local[4], local[6], local[7]], [32, 255, 254, 2]);
  const big = parseMessages(await routeMessage(undefined as never, RTM_NEWROUTE, 0, { dst: 'default', gateway: 'fd00::1', table: 1000 }))[0]!;
  assert.equal([big.data[0], big.data[4]], [10, 0]);
  assert.is(getU32(parseAttrs(big.data, 12)[15]), 1000, 'tables above 255 go in RTA_TABLE');
});

test('an address message carries LOCAL, ADDRESS, broadcast, label and high flags; it decodes back', () => {
  const msg = addressMessage(20, 0, 9, '10.1.2.3/20', { broadcast: true, label: 'eth0:x', noprefixroute: true, nodad: true });
  const a = parseAddress(parseMessages(msg)[0]!);
  assert.equal([a.linkIndex, a.cidr, a.broadcast, a.label, a.nodad, a.noprefixroute, a.family], [9, '10.1.2.3/20', '10.1.15.255', 'eth0:x', true, true, 4]);
  const six = parseAddress(parseMessages(addressMessage(20, 0, 2, 'fd00::5/64'))[0]!);
  assert.equal([six.family, six.cidr, six.broadcast], [6, 'fd00::5/64', undefined]);
});

test('the gratuitous ARP packet', () => {
  const p = gratuitousArpPacket('02:42:ac:11:00:02', '172.17.0.2');
  assert.is(p.toString('hex'), '0001' + '0800' + '06' + '04' + '0001' + '0242ac110002' + 'ac110002' + '000000000000' + 'ac110002');
});

test.run();
