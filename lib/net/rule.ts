/** Policy routing rules (`ip rule`): list, add, delete. See docs/NET.md. */
import {
  FRA_DST,
  FRA_FWMARK,
  FRA_FWMASK,
  FRA_GOTO,
  FRA_IIFNAME,
  FRA_OIFNAME,
  FRA_PRIORITY,
  FRA_SRC,
  FRA_TABLE,
  NLM_F_CREATE,
  NLM_F_EXCL,
  RTM_DELRULE,
  RTM_GETRULE,
  RTM_NEWRULE,
} from '../netlink/constants.js';
import { afOf, bytesToIp, familyOfAf, ipToBytes, parseCidr } from '../addr/ip.js';
import { getStr, getU32, MessageWriter, parseAttrs, type NlMessage } from '../netlink/encoding.js';
import type { Handle } from './handle.js';

/** What a rule does with a matching packet, as `ip rule` names it. */
export type RuleAction = 'table' | 'goto' | 'nop' | 'blackhole' | 'unreachable' | 'prohibit';
const ACTIONS: Record<RuleAction, number> = { table: 1, goto: 2, nop: 3, blackhole: 6, unreachable: 7, prohibit: 8 };
const FIB_RULE_INVERT = 0x2;

/** A rule to add, or the selectors of one to delete. */
export interface RuleSpec {
  family?: 4 | 6;
  priority?: number;
  /** lookup table (action `table`, the default) */
  table?: number | 'main' | 'local' | 'default';
  action?: RuleAction;
  /** priority to jump to (action `goto`) */
  goto?: number;
  /** `from` prefix */
  src?: string;
  /** `to` prefix */
  dst?: string;
  /** name of the link packets arrive on (`iif`); matched by name, so the link need not exist yet */
  inputLink?: string;
  /** name of the link packets leave by (`oif`), for locally generated traffic */
  outputLink?: string;
  fwmark?: number;
  fwmask?: number;
  /** `not`: match what the selectors do not */
  invert?: boolean;
}

/** A rule as the kernel reports it. */
export interface Rule {
  family: 4 | 6;
  priority: number | undefined;
  table: number;
  action: RuleAction | `${number}`;
  src: string | undefined;
  dst: string | undefined;
  inputLink: string | undefined;
  outputLink: string | undefined;
  fwmark: number | undefined;
  fwmask: number | undefined;
  goto: number | undefined;
  invert: boolean;
}

const TABLES = { default: 253, main: 254, local: 255 } as const;

/** Decodes an RTM_NEWRULE message (a dump entry). */
export function parseRule(m: NlMessage): Rule {
  const d = m.data;
  const a = parseAttrs(d, 12);
  const act = d.readUInt8(7);
  const fam = familyOfAf(d.readUInt8(0));
  return {
    family: fam,
    priority: getU32(a[FRA_PRIORITY]),
    table: getU32(a[FRA_TABLE]) ?? d.readUInt8(4),
    action: (Object.entries(ACTIONS).find(([, v]) => v === act)?.[0] as RuleAction | undefined) ?? `${act}`,
    src: a[FRA_SRC] ? `${bytesToIp(a[FRA_SRC]!)}/${d.readUInt8(2)}` : undefined,
    dst: a[FRA_DST] ? `${bytesToIp(a[FRA_DST]!)}/${d.readUInt8(1)}` : undefined,
    inputLink: getStr(a[FRA_IIFNAME]),
    outputLink: getStr(a[FRA_OIFNAME]),
    fwmark: getU32(a[FRA_FWMARK]),
    fwmask: getU32(a[FRA_FWMASK]),
    goto: getU32(a[FRA_GOTO]),
    invert: (d.readUInt32LE(8) & FIB_RULE_INVERT) !== 0,
  };
}

function ruleMessage(type: number, flags: number, r: RuleSpec): Buffer {
  const src = r.src ? parseCidr(r.src, 'rule source', { bare: true }) : undefined;
  const dst = r.dst ? parseCidr(r.dst, 'rule destination', { bare: true }) : undefined;
  const fam = r.family ?? src?.family ?? dst?.family ?? 4;
  const w = new MessageWriter(type, flags);
  const s = w.struct(12);
  s.writeUInt8(afOf(fam), 0);
  const action = r.action ?? (r.goto !== undefined ? 'goto' : type === RTM_DELRULE && r.table === undefined ? undefined : 'table');
  s.writeUInt8(action === undefined ? 0 : ACTIONS[action], 7);
  s.writeUInt32LE(r.invert ? FIB_RULE_INVERT : 0, 8);
  if (r.table !== undefined) {
    const t = typeof r.table === 'number' ? r.table : TABLES[r.table];
    s.writeUInt8(t < 256 ? t : 0, 4);
    w.u32(FRA_TABLE, t);
  }
  if (r.priority !== undefined) w.u32(FRA_PRIORITY, r.priority);
  if (src) {
    s.writeUInt8(src.prefix, 2);
    w.attr(FRA_SRC, ipToBytes({ family: src.family, value: src.ip }));
  }
  if (dst) {
    s.writeUInt8(dst.prefix, 1);
    w.attr(FRA_DST, ipToBytes({ family: dst.family, value: dst.ip }));
  }
  if (r.inputLink) w.str(FRA_IIFNAME, r.inputLink);
  if (r.outputLink) w.str(FRA_OIFNAME, r.outputLink);
  if (r.fwmark !== undefined) w.u32(FRA_FWMARK, r.fwmark);
  if (r.fwmask !== undefined) w.u32(FRA_FWMASK, r.fwmask);
  if (r.goto !== undefined) w.u32(FRA_GOTO, r.goto);
  return w.finish();
}

function describe(r: RuleSpec): string {
  const p: string[] = [];
  if (r.priority !== undefined) p.push(`priority ${r.priority}`);
  if (r.invert) p.push('not');
  if (r.src) p.push(`from ${r.src}`);
  if (r.dst) p.push(`to ${r.dst}`);
  if (r.inputLink) p.push(`iif ${r.inputLink}`);
  if (r.outputLink) p.push(`oif ${r.outputLink}`);
  if (r.fwmark !== undefined) p.push(`fwmark ${r.fwmark}`);
  if (r.table !== undefined) p.push(`lookup ${r.table}`);
  if (r.action && r.action !== 'table') p.push(r.action);
  return p.join(' ');
}

/** Adds a policy routing rule; EEXIST if an identical one exists. Equivalent to: `ip rule add [not] [from SRC] [to DST] [iif …] [oif …] [fwmark …] lookup TABLE [priority N]`. */
export async function addRule(h: Handle, r: RuleSpec): Promise<void> {
  const d = describe(r);
  await h.request(ruleMessage(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, r), { op: 'RTM_NEWRULE', what: `add rule ${d}`, object: d });
}

/** Deletes the first rule matching the selectors given (ENOENT when none does). Equivalent to: `ip rule del …`. */
export async function deleteRule(h: Handle, r: RuleSpec): Promise<void> {
  const d = describe(r);
  await h.request(ruleMessage(RTM_DELRULE, 0, r), { op: 'RTM_DELRULE', what: `delete rule ${d}`, object: d });
}

/** The policy routing rules of both families, or of one. Equivalent to: `ip rule show [-4|-6]`. */
export async function listRules(h: Handle, filter: { family?: 4 | 6 } = {}): Promise<Rule[]> {
  const out: Rule[] = [];
  for (const fam of filter.family ? [filter.family] : ([4, 6] as const)) {
    const w = new MessageWriter(RTM_GETRULE, 0);
    w.struct(12).writeUInt8(afOf(fam), 0);
    const replies = await h.dump(w.finish(), { op: 'RTM_GETRULE', what: `list IPv${fam} rules in ${h.label}` });
    for (const m of replies) if (m.type === RTM_NEWRULE) out.push(parseRule(m));
  }
  return out;
}
