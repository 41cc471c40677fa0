export * from './errors.js'
export * from './consensus/pow/index.js'
export * from './tx.js'
export * from './account-tree.js'
