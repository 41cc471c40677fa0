export * from './schedule.js'
export * from './engine.js'
export * from './service.js'
