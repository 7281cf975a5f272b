/** The library half of links.bench as a program of its own: node startup and module loading included. */
import { buildPairs } from './links-lib.js';

const [pid, n] = process.argv.slice(2).map(Number) as [number, number];
await buildPairs(pid, n);
