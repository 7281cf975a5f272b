import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { capabilityFor, during, ERR, ERRNO, errnoName, errnoValue, NetplumbError, SyscallError, wrapError } from '../../lib/errors.js';
import { CNI_ERR, CniError, cniCodeName, toCniError } from '../../lib/cni/errors.js';
import { NetlinkError } from '../../lib/netlink/errors.js';
import { AddressError } from '../../lib/addr/ip.js';
import { CliError, EXIT, EXIT_BY_CODE, exitCodeOf } from '../../lib/cli/output.js';
import { AgentError } from '../../lib/cli/agent-client.js';
import { ApiError, apiErrorOf, STATUS_BY_CODE } from '../../lib/agent/networks-api.js';
import { readFileSync } from 'node:fs';

test('errno names round-trip', () => {
  assert.is(errnoName(17), 'EEXIST');
  assert.is(errnoName(-19), 'ENODEV');
  assert.is(errnoName(11), 'EAGAIN');
  assert.is(errnoName(9999), 'E9999');
  assert.is(errnoValue('EBUSY'), 16);
});

test('SyscallError carries code, op and object', () => {
  const e = new SyscallError('setns', 1, '/proc/1/ns/net');
  assert.instance(e, NetplumbError);
  assert.is(e.code, 'EPERM');
  assert.is(e.op, 'setns');
  assert.is(e.object, '/proc/1/ns/net');
  assert.is(e.errno, 1);
  assert.match(e.message, /setns \/proc\/1\/ns\/net: EPERM/);
  assert.is(e.name, 'SyscallError');
});

test('netplumb codes start with ERR_, are unique, and never collide with an errno name', () => {
  const codes = Object.values(ERR);
  assert.is(new Set(codes).size, codes.length);
  for (const c of codes) {
    assert.match(c, /^ERR_[A-Z_]+$/, c);
    assert.is(errnoValue(c), undefined, c);
  }
  assert.is(ERRNO.ENODEV, errnoValue('ENODEV'));
});

test('a permission failure names the capability it lacked', () => {
  const setns = new SyscallError('setns', ERRNO.EPERM, '/proc/1/ns/net');
  assert.is(setns.capability, 'CAP_SYS_ADMIN');
  assert.match(setns.message, /^setns \/proc\/1\/ns\/net: EPERM \(needs CAP_SYS_ADMIN\)$/);
  assert.is(new SyscallError('mount', ERRNO.EPERM, '/run/netns/x').capability, 'CAP_SYS_ADMIN');
  const link = new NetlinkError(ERRNO.EPERM, { op: 'RTM_NEWLINK', what: 'create link veth0', object: 'veth0' });
  assert.is(link.capability, 'CAP_NET_ADMIN');
  assert.match(link.message, /^create link veth0: EPERM \(Operation not permitted\) \(needs CAP_NET_ADMIN\)$/);
  assert.is(new NetlinkError(ERRNO.EEXIST, { op: 'RTM_NEWLINK', what: 'create link veth0' }).capability, undefined, 'only permission failures');
  assert.is(new SyscallError('flock', ERRNO.EACCES, '/x').capability, undefined, 'flock needs no capability');
  assert.equal(
    [capabilityFor('unshare'), capabilityFor('nft'), capabilityFor('sysctl'), capabilityFor('garp'), capabilityFor('netns')],
    ['CAP_SYS_ADMIN', 'CAP_NET_ADMIN', 'CAP_NET_ADMIN', 'CAP_NET_RAW', undefined],
  );
});

test('an error of a step inside a compound operation names the operation and chains the step as cause', async () => {
  const inner = new NetlinkError(ERRNO.ENODEV, { op: 'RTM_GETLINK', what: 'get link nosuch0', object: 'nosuch0' });
  const ctx = { op: 'addAddress', what: 'add address 10.0.0.2/24 to nosuch0', object: '10.0.0.2/24' };
  const e = wrapError(inner, ctx);
  assert.instance(e, NetplumbError);
  assert.equal([e.code, e.op, e.object, e.errno], ['ENODEV', 'addAddress', '10.0.0.2/24', ERRNO.ENODEV]);
  assert.is(e.cause, inner);
  assert.match(e.message, /^add address 10\.0\.0\.2\/24 to nosuch0: get link nosuch0: ENODEV/);
  try {
    await during(ctx, Promise.reject(inner));
    assert.unreachable();
  } catch (x) {
    assert.is((x as NetplumbError).op, 'addAddress');
    assert.is((x as NetplumbError).cause, inner);
  }
  assert.is(await during(ctx, Promise.resolve(7)), 7);
  const denied = wrapError(new SyscallError('setns', ERRNO.EPERM), { op: 'openHandle', what: 'open handle' });
  assert.is(denied.capability, 'CAP_SYS_ADMIN', 'the capability survives the wrapping');
});

test('one CNI code registry: unique numbers, names, netplumb codes mapped, everything else INTERNAL', () => {
  const nums = Object.values(CNI_ERR);
  assert.is(new Set(nums).size, nums.length, 'no number twice');
  assert.is(cniCodeName(110), 'BRIDGE_CONFLICT');
  assert.is(cniCodeName(120), 'CHECK_FAILED');
  assert.is(new CniError(CNI_ERR.ALREADY_JOINED, 'x').code, 'ERR_CNI_ALREADY_JOINED');
  assert.is(toCniError(new AddressError('bad', 'x')).cniCode, CNI_ERR.INVALID_NETWORK_CONFIG);
  assert.is(toCniError(new NetplumbError('self', { code: ERR.NETNS_SELF, op: 'netns' })).cniCode, CNI_ERR.INVALID_NETNS);
  assert.is(toCniError(new SyscallError('setns', ERRNO.EPERM)).cniCode, CNI_ERR.NOT_PERMITTED);
  assert.is(toCniError(new Error('what')).cniCode, CNI_ERR.INTERNAL);
  assert.is(CNI_ERR.INTERNAL, 999);
});

test('docs/ERRORS.md lists every netplumb code', () => {
  const doc = readFileSync(new URL('../../../docs/ERRORS.md', import.meta.url), 'utf8');
  for (const c of Object.values(ERR)) assert.ok(doc.includes(`| \`${c}\` |`), `${c} is not in docs/ERRORS.md`);
});

test("the command's exit statuses and the agent's HTTP statuses agree on every code, through the agent too", () => {
  const exitOfStatus: Record<number, number> = { 400: EXIT.USAGE, 404: EXIT.NOT_FOUND, 409: EXIT.CONFLICT };
  const statusOfExit: Record<number, number> = { [EXIT.USAGE]: 400, [EXIT.NOT_FOUND]: 404, [EXIT.CONFLICT]: 409 };
  for (const [code, status] of Object.entries(STATUS_BY_CODE)) assert.is(EXIT_BY_CODE[code], exitOfStatus[status], code);
  for (const [code, exit] of Object.entries(EXIT_BY_CODE)) {
    if (exit === EXIT.NOT_PERMITTED) continue; // the agent serves with its own privileges: no 403 from a route
    const answer = apiErrorOf(new NetplumbError('x', { code, op: 'network' }));
    assert.is(answer.status, statusOfExit[exit] ?? 500, code);
    assert.is(exitCodeOf(new AgentError(answer.message, answer.status, answer.code)), exit, `${code} through the agent`);
  }
  assert.is(exitCodeOf(new AgentError('refused', 403, undefined)), EXIT.NOT_PERMITTED, "the agent's 403 (a CNI error, numeric code)");
  assert.is(new AgentError('?', 500, undefined).code, ERR.AGENT);
  assert.is(exitCodeOf(new NetplumbError('none left', { code: ERR.NO_FREE_SUBNET, op: 'network create' })), EXIT.FAILED);
  assert.is(apiErrorOf(new Error('plain')).code, ERR.AGENT, 'an error without a code answers ERR_AGENT');
  for (const e of [new CliError('x', EXIT.USAGE), new AgentError('x', 404, undefined), new ApiError(400, 'x', ERR.INVALID_ARG_VALUE)]) {
    assert.instance(e, NetplumbError);
  }
  assert.equal(
    [new CliError('x', EXIT.USAGE).code, new CliError('x', EXIT.NOT_FOUND).code, new CliError('x', EXIT.RUN_FAILED).code],
    [ERR.INVALID_ARG_VALUE, ERR.NOT_FOUND, ERR.COMMAND_FAILED],
  );
  assert.is(new CliError('x', EXIT.NOT_PERMITTED, { code: 'EACCES', op: 'access' }).code, 'EACCES');
});

test.run();
