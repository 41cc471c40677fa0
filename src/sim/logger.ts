/**
 * A `Logger` that writes into the simulation trace instead of a console: logs become part of the
 * hashed record of a run, so a replay shows exactly what each node said, and when.
 */
import type { LogFields, Logger } from '../core/index.js'
import type { SimKernel } from './kernel.js'

export type TraceLogLevel = 'debug' | 'info' | 'warn' | 'error'

const LEVEL_RANK: Record<TraceLogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 }

/** Longest rendering of one log line's fields, so a huge field cannot bloat the trace. */
const LOG_FIELDS_CHARS_MAX = 512

export function createTraceLogger (kernel: SimKernel, bindings: LogFields = {}, levelMin: TraceLogLevel = 'debug'): Logger {
  const write = (level: TraceLogLevel) => (fields: LogFields, message: string): void => {
    if (LEVEL_RANK[level] < LEVEL_RANK[levelMin]) return
    kernel.trace(`log.${level}`, `${message} ${renderFields({ ...bindings, ...fields })}`)
  }
  return {
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    child: (childBindings) => createTraceLogger(kernel, { ...bindings, ...childBindings }, levelMin)
  }
}

/**
 * JSON, except for values JSON cannot hold (bigint, bytes, errors), which get a short stand-in.
 * Never throws: a log call that cannot be rendered (a cycle, a throwing toJSON) must not end the
 * run, as the real logger would not end the process.
 */
function renderFields (fields: LogFields): string {
  let text: string
  try {
    text = JSON.stringify(fields, (_key, value: unknown) => {
      if (typeof value === 'bigint') return value.toString()
      if (value instanceof Uint8Array) return `<${value.length} bytes>`
      if (value instanceof Error) return `${value.name}: ${value.message}`
      return value
    })
  } catch (error) {
    text = `<fields not renderable: ${error instanceof Error ? error.message : String(error)}>`
  }
  return text.length > LOG_FIELDS_CHARS_MAX ? `${text.slice(0, LOG_FIELDS_CHARS_MAX)}...` : text
}
