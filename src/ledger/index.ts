export * from './errors.js'
export * from './consensus/pow/index.js'
