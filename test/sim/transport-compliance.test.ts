/**
 * The simulated transport passes the same compliance suite as libp2p: once on a calm network,
 * and once on a hostile one (loss, duplication, reordering, a long latency tail), where the
 * contract must hold just the same.
 */
import { transportComplianceSuite } from '../support/transport-compliance.js'
import { SimWorld } from '../support/sim-world.js'

/** Virtual time is free: refusals outlast `linkIdleTimeoutMs`, so a lost reset cannot hide a refusal. */
const REFUSAL_MS = 10_000
const LINK_TIMEOUT_MS = 10_000

transportComplianceSuite('simulated', () => new SimWorld(), LINK_TIMEOUT_MS, REFUSAL_MS)

transportComplianceSuite('simulated, lossy network', () => new SimWorld({
  seed: 7,
  conditions: {
    latency: { kind: 'logNormal', medianMs: 10, sigma: 0.8 },
    lossProbability: 0.15,
    duplicateProbability: 0.1,
    reorderProbability: 0.2,
    reorderDelayMsMax: 80
  }
}), LINK_TIMEOUT_MS, REFUSAL_MS)
