export * from './proposer.js'
export * from './engine.js'
export * from './service.js'
