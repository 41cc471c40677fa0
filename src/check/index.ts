export * from './chain-safety.js'
export * from './linearizable.js'
export * from './causal.js'
export * from './convergence.js'
