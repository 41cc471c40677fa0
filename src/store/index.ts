/** The store subsystem's public face (DESIGN.md "Layers"). */
export * from './errors.js'
export * from './ring.js'
export * from './messages.js'
export * from './register.js'
export * from './acceptor.js'
export * from './service.js'
