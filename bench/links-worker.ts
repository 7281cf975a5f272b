/** The library half of links.bench as a program of its own: node startup and module loading included. */
import { openHandle } from '../lib/net/handle.js';
import { createVethPair, getLink } from '../lib/net/link.js';
import { addAddress } from '../lib/net/addr.js';
import { batch } from '../lib/net/batch.js';

const [pid, n] = process.argv.slice(2).map(Number) as [number, number];
const addr = (i: number) => `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`;
const h = openHandle({ pid });
const br = (await getLink(h, 'br0')).index;
await batch(
  Array.from({ length: n }, (_, i) => async () => {
    const vh = await createVethPair(h, { name: `vh${i}`, master: br, up: true, peer: { name: `vc${i}` } });
    await addAddress(h, vh.linkIndex!, addr(i));
  }),
  { concurrency: 1024 },
);
h.close();
