import { transportComplianceSuite } from '../support/transport-compliance.js'
import { Libp2pWorld } from '../support/libp2p-world.js'

transportComplianceSuite('libp2p (TCP + Noise + Yamux on loopback)', () => new Libp2pWorld())
