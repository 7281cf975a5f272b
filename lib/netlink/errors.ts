/**
 * NetlinkError: the kernel's refusal of a request, with the errno name, the message type, the object and the
 * kernel's extended ACK text. See docs/NET.md for the rest.
 */
import { errnoName, NetplumbError } from '../errors.js';
import { strerror } from '../sys/libc.js';

/** What a request was about, so that its error names the object: `create link veth0`. */
export interface RequestInfo {
  /** the message type's name, e.g. RTM_NEWLINK */
  op: string;
  /** a phrase for the message: `create link veth0`, `add address 10.0.0.1/24 to eth0` */
  what: string;
  /** the link, address or route the request was about */
  object?: string | undefined;
}

function describe(errno: number): string {
  try {
    return strerror(errno);
  } catch {
    return errnoName(errno);
  }
}

/**
 * The kernel refused a netlink request. `code` is the errno name (`EEXIST`), `op` the message type
 * (`RTM_NEWLINK`), `object` what it was about; `extack` is the kernel's own explanation when it gave one.
 */
export class NetlinkError extends NetplumbError {
  readonly extack: string | undefined;

  constructor(errno: number, info: RequestInfo, extack?: string) {
    const code = errnoName(errno);
    super(`${info.what}: ${code} (${describe(errno)})${extack ? `: ${extack}` : ''}`, {
      code,
      op: info.op,
      object: info.object,
      errno,
    });
    this.extack = extack;
  }
}
