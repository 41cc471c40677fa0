/**
 * `synod up`'s V8 flags for nodes that share the machine's cores (`colocatedNodeFlags`); the
 * cluster test (test/cluster/up.test.ts) checks that the node processes get them.
 */
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { colocatedNodeFlags, singleThreadedGc } from '../../src/cli/up.js'

it('nodes at least as many as the cores collect garbage on one thread each; fewer keep V8\'s concurrent collector', () => {
  assert.deepEqual(colocatedNodeFlags(4, 2), ['--single-threaded-gc'])
  assert.deepEqual(colocatedNodeFlags(2, 2), ['--single-threaded-gc'])
  assert.deepEqual(colocatedNodeFlags(1, 1), ['--single-threaded-gc'])
  assert.deepEqual(colocatedNodeFlags(3, 4), [])
  assert.deepEqual(colocatedNodeFlags(4, 16), [])
})

it('the last of --single-threaded-gc and --no-single-threaded-gc decides', () => {
  assert.equal(singleThreadedGc(['--single-threaded-gc']), true)
  assert.equal(singleThreadedGc(['--single-threaded-gc', '--perf-prof', '--no-single-threaded-gc']), false)
  assert.equal(singleThreadedGc(['--no-single-threaded-gc', '--single-threaded-gc']), true)
  assert.equal(singleThreadedGc([]), false)
})
