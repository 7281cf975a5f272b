/**
 * Pictures of a Topology: Graphviz DOT text, and SVG — laid out by Graphviz's `dot` when it is installed, else
 * by elkjs (ELK's layered layout, in process). Namespaces are boxes, links are nodes inside them (loopback
 * left out), bridge ports are joined to their bridge, veth pairs are dashed edges across boxes.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { ERR, NetplumbError } from '../errors.js';
import type { Topology, TopoLink, TopoNamespace } from './topology.js';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const nodeId = (ns: TopoNamespace, l: TopoLink) => `${ns.id}_${l.index}`;
const drawn = (ns: TopoNamespace) => ns.links.filter((l) => l.kind !== 'loopback');

function nsTitle(ns: TopoNamespace): string[] {
  return [`${ns.label} (${ns.kind === 'host' ? 'host' : ns.id})`, ...ns.defaultRoutes, ...ns.published.map((p) => `publish ${p}`)];
}

function linkLines(l: TopoLink): string[] {
  return [`${l.name} · ${l.kind}${l.up ? '' : ' (down)'}`, ...l.addresses];
}

interface Edge {
  id: string;
  from: string;
  to: string;
  kind: 'port' | 'veth';
  /** the namespace both ends are in, or undefined across namespaces */
  within?: TopoNamespace;
}

function edges(t: Topology): Edge[] {
  const out: Edge[] = [];
  for (const ns of t.namespaces) {
    for (const l of drawn(ns)) {
      const br = l.master ? ns.links.find((b) => b.name === l.master) : undefined;
      if (br) out.push({ id: `e${out.length}`, from: nodeId(ns, l), to: nodeId(ns, br), kind: 'port', within: ns });
      if (l.peer) {
        const o = t.namespaces.find((x) => x.id === l.peer!.ns);
        const p = o?.links.find((x) => x.name === l.peer!.name);
        // each pair once: from the end that sorts first
        if (o && p && `${ns.id}/${l.index}` < `${o.id}/${p.index}`) {
          out.push({ id: `e${out.length}`, from: nodeId(ns, l), to: nodeId(o, p), kind: 'veth', ...(o === ns ? { within: ns } : {}) });
        }
      }
    }
  }
  return out;
}

/** Graphviz DOT: one cluster per namespace. */
export function renderDot(t: Topology): string {
  const q = (s: string) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  const lines = [
    'digraph netplumb {',
    '  rankdir=LR; compound=true; node [shape=box, style="rounded,filled", fontname="sans-serif", fontsize=10]; edge [dir=none];',
  ];
  for (const ns of t.namespaces) {
    lines.push(`  subgraph ${q(`cluster_${ns.id}`)} {`, `    label=${q(nsTitle(ns).join('\\n'))}; style="rounded"; fontname="sans-serif"; fontsize=11;`);
    for (const l of drawn(ns))
      lines.push(
        `    ${q(nodeId(ns, l))} [label=${q(linkLines(l).join('\\n'))}, fillcolor=${l.kind === 'bridge' ? '"#ffe9b3"' : l.kind === 'veth' ? '"#d9ecff"' : '"#eeeeee"'}];`,
      );
    lines.push('  }');
  }
  for (const e of edges(t)) lines.push(`  ${q(e.from)} -> ${q(e.to)}${e.kind === 'veth' ? ' [style=dashed, color="#3366cc", label="veth"]' : ''};`);
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

/** Whether Graphviz's `dot` can be run. */
export function hasGraphviz(): boolean {
  return spawnSync('dot', ['-V'], { stdio: 'ignore' }).status === 0;
}

/** SVG: Graphviz when installed (or `layout: 'dot'`), else elkjs. */
export async function renderSvg(t: Topology, layout: 'auto' | 'dot' | 'elk' = 'auto'): Promise<string> {
  if (layout === 'dot' || (layout === 'auto' && hasGraphviz())) {
    const r = spawnSync('dot', ['-Tsvg'], { input: renderDot(t), encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new NetplumbError(`dot -Tsvg failed: ${r.stderr.trim()}`, { code: ERR.COMMAND_FAILED, op: 'dot -Tsvg', cause: r.error });
    return r.stdout;
  }
  return renderSvgElk(t);
}

const CHAR_W = 6.6;
const LINE_H = 14;
const size = (lines: string[]) => ({ width: Math.ceil(Math.max(...lines.map((s) => s.length)) * CHAR_W + 16), height: lines.length * LINE_H + 10 });

interface ElkNode {
  id: string;
  x?: number;
  y?: number;
  width?: number;
  height?: number;
  children?: ElkNode[];
  edges?: ElkEdge[];
  layoutOptions?: Record<string, string>;
}
interface ElkEdge {
  id: string;
  sources: string[];
  targets: string[];
  sections?: Array<{ startPoint: { x: number; y: number }; endPoint: { x: number; y: number }; bendPoints?: Array<{ x: number; y: number }> }>;
}

async function renderSvgElk(t: Topology): Promise<string> {
  // elkjs is CommonJS (module.exports = ELK): loaded on the first SVG only, it is large
  const ELK = createRequire(import.meta.url)('elkjs/lib/elk.bundled.js') as new () => { layout(g: unknown): Promise<unknown> };
  const all = edges(t);
  const graph: ElkNode = {
    id: 'root',
    layoutOptions: {
      'elk.algorithm': 'layered',
      'elk.direction': 'RIGHT',
      'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
      'elk.spacing.nodeNode': '24',
      'elk.layered.spacing.nodeNodeBetweenLayers': '48',
      'elk.edgeRouting': 'POLYLINE',
    },
    children: t.namespaces.map((ns) => {
      const title = size(nsTitle(ns));
      return {
        id: ns.id,
        layoutOptions: {
          'elk.padding': `[top=${title.height + 8},left=12,bottom=12,right=12]`,
          'elk.nodeSize.minimum': `(${title.width + 8}, ${title.height + 20})`,
          'elk.nodeSize.constraints': 'MINIMUM_SIZE',
        },
        children: drawn(ns).map((l) => ({ id: nodeId(ns, l), ...size(linkLines(l)) })),
        edges: all.filter((e) => e.within === ns).map((e) => ({ id: e.id, sources: [e.from], targets: [e.to] })),
      };
    }),
    edges: all.filter((e) => !e.within).map((e) => ({ id: e.id, sources: [e.from], targets: [e.to] })),
  };
  const laid = (await new ELK().layout(graph)) as ElkNode;
  const out: string[] = [];
  const linkOf = new Map<string, TopoLink>();
  for (const ns of t.namespaces) for (const l of drawn(ns)) linkOf.set(nodeId(ns, l), l);
  const text = (x: number, y: number, lines: string[], weight = 'normal') =>
    lines
      .map(
        (s, i) =>
          `<text x="${x}" y="${y + (i + 1) * LINE_H - 3}" font-family="sans-serif" font-size="11" font-weight="${i === 0 ? weight : 'normal'}">${esc(s)}</text>`,
      )
      .join('');
  const path = (e: ElkEdge, dx: number, dy: number, kind: Edge['kind']) =>
    (e.sections ?? [])
      .map((s) => {
        const pts = [s.startPoint, ...(s.bendPoints ?? []), s.endPoint].map((p) => `${(p.x + dx).toFixed(1)},${(p.y + dy).toFixed(1)}`).join(' ');
        return `<polyline class="edge ${kind}" data-edge="${e.id}" points="${pts}" fill="none" stroke="${kind === 'veth' ? '#3366cc' : '#666'}" stroke-width="1.5"${kind === 'veth' ? ' stroke-dasharray="6,4"' : ''}/>`;
      })
      .join('');
  const kindOfEdge = new Map(all.map((e) => [e.id, e.kind]));
  for (const nsNode of laid.children ?? []) {
    const ns = t.namespaces.find((n) => n.id === nsNode.id)!;
    const x = nsNode.x ?? 0;
    const y = nsNode.y ?? 0;
    out.push(
      `<g class="namespace" data-ns="${esc(ns.label)}"><rect x="${x}" y="${y}" width="${nsNode.width}" height="${nsNode.height}" rx="10" fill="${ns.kind === 'host' ? '#f6f6f0' : '#f0f6ff'}" stroke="#333"/>${text(x + 10, y + 4, nsTitle(ns), 'bold')}</g>`,
    );
    for (const e of nsNode.edges ?? []) out.push(path(e, x, y, kindOfEdge.get(e.id)!));
    for (const c of nsNode.children ?? []) {
      const l = linkOf.get(c.id)!;
      const fill = l.kind === 'bridge' ? '#ffe9b3' : l.kind === 'veth' ? '#d9ecff' : '#eeeeee';
      out.push(
        `<g class="link ${esc(l.kind)}" data-link="${esc(l.name)}"><rect x="${x + c.x!}" y="${y + c.y!}" width="${c.width}" height="${c.height}" rx="5" fill="${fill}" stroke="#555"/>${text(x + c.x! + 8, y + c.y! + 4, linkLines(l), 'bold')}</g>`,
      );
    }
  }
  for (const e of laid.edges ?? []) out.push(path(e, 0, 0, kindOfEdge.get(e.id)!));
  const w = Math.ceil((laid.width ?? 100) + 20);
  const h = Math.ceil((laid.height ?? 100) + 20);
  return `<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="-10 -10 ${w} ${h}">\n<rect x="-10" y="-10" width="${w}" height="${h}" fill="white"/>\n${out.join('\n')}\n</svg>\n`;
}
