export * from './proposer.js'
