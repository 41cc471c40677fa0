/** Structured JSON logs with pino, behind the `Logger` interface protocol code sees. */
import { pino, type Logger as PinoLogger, type LevelWithSilent, type DestinationStream } from 'pino'
import type { LogFields, Logger } from '../core/index.js'

export type LogLevel = LevelWithSilent

function wrap (logger: PinoLogger): Logger {
  return {
    debug: (fields: LogFields, message: string) => { logger.debug(fields, message) },
    info: (fields: LogFields, message: string) => { logger.info(fields, message) },
    warn: (fields: LogFields, message: string) => { logger.warn(fields, message) },
    error: (fields: LogFields, message: string) => { logger.error(fields, message) },
    child: (bindings: LogFields) => wrap(logger.child(bindings))
  }
}

export function createLogger (bindings: LogFields, level: LogLevel = 'info', destination?: DestinationStream): Logger {
  const base = destination === undefined ? pino({ level, base: bindings }) : pino({ level, base: bindings }, destination)
  return wrap(base)
}
