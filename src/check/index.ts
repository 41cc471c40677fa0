export * from './chain-safety.js'
