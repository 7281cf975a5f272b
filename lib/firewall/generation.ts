/**
 * The nftables ruleset's generation: a counter the kernel keeps per network namespace and bumps by one with
 * every committed transaction, whoever sends it (nft, iptables-nft, firewalld, another netplumb process); a
 * transaction that fails commits nothing and bumps nothing. `nft` itself reads it (NFT_MSG_GETGEN) to tell
 * whether its cache is current. Read here with one synchronous request on a NETLINK_NETFILTER socket of the
 * calling process's own namespace (≈ 10 µs), so that it can bracket a libnftables transaction — itself
 * synchronous — with nothing else of this process running in between.
 * See docs/FIREWALL.md for the rest.
 */
import { MessageWriter, parseAttrs, parseMessages } from '../netlink/encoding.js';
import { AF_NETLINK, NETLINK_NETFILTER, NLM_F_REQUEST, NLMSG_ERROR } from '../netlink/constants.js';
import { closeFd, recvNow, sendto, socket } from '../sys/libc.js';

const SOCK_RAW = 3;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_NEWGEN = 15;
const NFT_MSG_GETGEN = 16;
const NFTA_GEN_ID = 1;
const NFGENMSG_LEN = 4;

/** sockaddr_nl of the kernel (port 0, no groups) */
const KERNEL = (() => {
  const a = Buffer.alloc(12);
  a.writeUInt16LE(AF_NETLINK, 0);
  return a;
})();

let fd: number | undefined;
let seq = 0;

/** nlmsghdr + nfgenmsg (AF_UNSPEC, NFNETLINK_V0, res_id 0, all zero): a GETGEN has no attributes. */
function getgenRequest(s: number): Buffer {
  const w = new MessageWriter((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, NLM_F_REQUEST, 32);
  w.struct(NFGENMSG_LEN);
  const b = w.finish();
  b.writeUInt32LE(s, 8); // the sequence number, which the reply carries back
  return b;
}

/**
 * The current generation of the ruleset of this process's network namespace, or undefined when it cannot
 * be read (no nf_tables, no privilege, an unexpected answer). The kernel answers within the send, so the
 * reply is read without waiting; anything else is "unknown", never a guess.
 */
export function rulesetGeneration(): number | undefined {
  try {
    fd ??= socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER, 'NETLINK_NETFILTER');
    seq = (seq % 0x7fffffff) + 1;
    sendto(fd, getgenRequest(seq), KERNEL, 'NFT_MSG_GETGEN');
    // Replies to an earlier request that went unread (none is expected) are skipped by their sequence number.
    for (let reply = recvNow(fd, 4096); reply !== undefined; reply = recvNow(fd, 4096)) {
      for (const m of parseMessages(reply)) {
        if (m.seq !== seq) continue;
        if (m.type === NLMSG_ERROR || m.type !== ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN)) return undefined;
        const id = parseAttrs(m.data, NFGENMSG_LEN)[NFTA_GEN_ID];
        return id !== undefined && id.length >= 4 ? id.readUInt32BE(0) : undefined;
      }
    }
    return undefined;
  } catch {
    if (fd !== undefined) closeFd(fd);
    fd = undefined;
    return undefined;
  }
}
