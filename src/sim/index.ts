/**
 * The simulated world: the production node code on virtual time, with a seeded network, disk and
 * nemesis. See docs/sim.md.
 */
export { SimKernel, defaultTraceLinesKeptMax } from './kernel.js'
export type { EventId, EventOwner, KernelStats, SimKernelOptions } from './kernel.js'
export { SimNetwork, calmLinkConditions, drawLatencyMs, describeGroups } from './network.js'
export type { LatencyDistribution, LinkConditions, NetworkPayload, NetworkStats, PacketReceiver, PartitionInfo, PartitionKind, SendFate } from './network.js'
export { SimDisk, defaultSyncLatencyMsMin, defaultSyncLatencyMsMax } from './disk.js'
export type { SimDiskInit, SimDiskStats } from './disk.js'
export { SimTransport, defaultSimTransportLimits } from './transport.js'
export type { LinkPacket, SimTransportInit, SimTransportLimits } from './transport.js'
export { createTraceLogger } from './logger.js'
export type { TraceLogLevel } from './logger.js'
export { SimCluster, helloServices } from './cluster.js'
export type { ServiceContext, ServiceFactory, SimClusterInit, SimNode } from './cluster.js'
export { Nemesis, describeLatency, describeProfile, drawFaultProfile, faultKinds, scaleLatency } from './nemesis.js'
export type { FaultKind, FaultProfile, InjectedFault, NemesisInit } from './nemesis.js'
export { runSimulation, formatReport, isConverged, defaultLivenessTimeoutMs, simulationDurationMsMax, simulationNodesMax } from './run.js'
export type { NodeSummary, SimulationOptions, SimulationResult, SimulationSummary } from './run.js'
export { shortId } from './names.js'
export { SimSealer } from './sealer.js'
export { byzantinePos, byzantineBehaviours } from './byzantine-pos.js'
export type { ByzantineBehaviour } from './byzantine-pos.js'
