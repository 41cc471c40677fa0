/** The gateway's public face: the proxy, its config, its errors, and the balancers it is built on. */
export { Gateway, kvKeyOf, type GatewayStatus, type GatewayOptions } from './gateway.js'
export { gatewayConfigSchema, parseGatewayConfig, loadGatewayConfig, upstreamId, type GatewayConfig, type GatewayConfigInput } from './config.js'
export { GatewayError, gatewayStatusFor, type GatewayErrorCode } from './errors.js'
export * from './balancers/index.js'
export { Dashboard, parseGroups, parseLinkQuality, type DashboardOptions, type DashboardSnapshot, type LocalClusterControl, type LocalClusterNode } from './dashboard.js'
export * from './dashboard-model.js'
