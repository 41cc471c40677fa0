export * from './chain-safety.js'
export * from './linearizable.js'
