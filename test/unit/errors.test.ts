import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { errnoName, errnoValue, NetplumbError, SyscallError } from '../../lib/errors.js';

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

test.run();
