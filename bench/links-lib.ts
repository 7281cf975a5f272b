/** The library's half of links.bench: N veth pairs, host side up on br0, a /32 on the peer. */
// Through the package's entry, as a program using the library imports it (the `exports` map offers nothing else).
import { addAddress, batch, createVethPair, getLink, openHandleSync } from 'netplumb';

export const pairAddress = (i: number) => `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`;

/** Builds the pairs in the namespace of `pid` the way a caller of the library would: one batch. */
export async function buildPairs(pid: number, n: number): Promise<void> {
  const h = openHandleSync({ pid });
  try {
    const br = (await getLink(h, 'br0')).index;
    await batch(
      Array.from({ length: n }, (_, i) => async () => {
        // the new link comes back with its peer's index: no lookup by name needed
        const vh = await createVethPair(h, { name: `vh${i}`, master: br, up: true, peer: { name: `vc${i}` } });
        await addAddress(h, { link: vh.linkIndex!, cidr: pairAddress(i) });
      }),
      { concurrency: 1024 },
    );
  } finally {
    h.close();
  }
}
