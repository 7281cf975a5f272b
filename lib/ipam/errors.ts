import { NetplumbError } from '../errors.js';

/**
 * What went wrong in IPAM, as a netplumb code (lib/cni maps each to a CNI error code, see docs/CNI.md):
 * - `ERR_IPAM_CONFIG`: the configuration is invalid (CNI 7)
 * - `ERR_IPAM_EXHAUSTED`: no free address left in a range set (CNI 100)
 * - `ERR_IPAM_UNAVAILABLE`: a requested address is taken, is the gateway, or is in no range (CNI 101)
 * - `ERR_IPAM_DUPLICATE`: the attachment already holds a different address in the range set (CNI 102)
 * - `ERR_IPAM_NOT_ALLOCATED`: CHECK found no address held by the attachment (CNI 103)
 * - `ERR_IPAM_UNSAFE_STORE`: the store is not a plain directory of plain files (a planted link …) (CNI 106)
 * - `ERR_IPAM_BUSY`: the store's lock was not obtained in time (CNI 11, try again later)
 */
export type IpamCode =
  | 'ERR_IPAM_CONFIG'
  | 'ERR_IPAM_EXHAUSTED'
  | 'ERR_IPAM_UNAVAILABLE'
  | 'ERR_IPAM_DUPLICATE'
  | 'ERR_IPAM_NOT_ALLOCATED'
  | 'ERR_IPAM_UNSAFE_STORE'
  | 'ERR_IPAM_BUSY';

export class IpamError extends NetplumbError {
  declare readonly code: IpamCode;

  constructor(code: IpamCode, message: string, op: string, object?: string, cause?: unknown) {
    super(message, { code, op, object, cause });
  }
}

export function configError(message: string, object?: string): IpamError {
  return new IpamError('ERR_IPAM_CONFIG', message, 'parse ipam config', object);
}
