import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { SimKernel, createTraceLogger } from '../../src/sim/index.js'

describe('trace logger', () => {
  it('writes log lines into the trace, with bindings, above the minimum level', () => {
    const kernel = new SimKernel()
    const log = createTraceLogger(kernel, { node: 'n1' }, 'info').child({ service: 'hello' })
    log.debug({}, 'hidden')
    log.info({ peers: 2 }, 'linked')
    log.warn({ big: 10n ** 20n, bytes: new Uint8Array(3), error: new RangeError('bad') }, 'odd fields')
    assert.deepEqual(kernel.recentTrace(), [
      '0 log.info linked {"node":"n1","service":"hello","peers":2}',
      '0 log.warn odd fields {"node":"n1","service":"hello","big":"100000000000000000000","bytes":"<3 bytes>","error":"RangeError: bad"}'
    ])
  })

  it('never throws, whatever the fields, and bounds their length', () => {
    const kernel = new SimKernel()
    const log = createTraceLogger(kernel)
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    assert.doesNotThrow(() => { log.error({ cyclic }, 'cycle') })
    log.info({ text: 'x'.repeat(10_000) }, 'long')
    const [cycleLine, longLine] = kernel.recentTrace()
    assert.match(cycleLine ?? '', /^0 log\.error cycle <fields not renderable: /)
    assert.ok((longLine ?? '').length < 600, 'a huge field is cut short')
  })
})
