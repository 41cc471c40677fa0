/**
 * Wires services to a transport and the environment parts, in either world. The host builds the
 * `Env` each service sees, routes every decoded message to the service that owns its type, and
 * fans link changes out. It performs no IO itself: the transport, clock, timers and disk do.
 */
import { MessageRegistry, type Message } from './codec.js'
import type { Clock, Disk, Env, LinkState, Logger, NodeId, Service, Timers } from './env.js'
import type { Prng } from './prng.js'
import type { Transport } from './transport.js'
import type { SynodError } from './errors.js'

export interface NodeHostInit {
  self: NodeId
  members: readonly NodeId[]
  clock: Clock
  timers: Timers
  random: Prng
  disk: Disk
  log: Logger
  transport: Transport
  services: readonly Service[]
  /** Called for every peer that sent bytes which did not decode, for scoring and metrics. */
  onPeerMisbehaved?: (peer: NodeId, error: SynodError) => void
}

/** The registry of every message type the given services speak. */
export function registryFor (services: readonly Service[]): MessageRegistry {
  return new MessageRegistry(services.flatMap((service) => service.messages))
}

export class NodeHost {
  readonly env: Env
  private readonly owners = new Map<string, Service>()
  private started = false

  constructor (private readonly init: NodeHostInit) {
    for (const service of init.services) {
      for (const definition of service.messages) this.owners.set(definition.type, service)
    }
    const { self, clock, timers, random, disk, log, transport } = init
    const members = [...new Set(init.members)].sort()
    const registry = registryFor(init.services)
    this.env = {
      self,
      members,
      now: () => clock.now(),
      random,
      send: (to, message) => { transport.send(to, message) },
      setTimer: (afterMs, fire) => timers.setTimer(afterMs, fire),
      clearTimer: (id) => { timers.clearTimer(id) },
      disk,
      log,
      links: () => transport.links(),
      refusePeer: (peer, untilMs) => { transport.refuse(peer, untilMs) },
      codec: { encode: (message) => registry.encode(message), decode: (bytes) => registry.decode(bytes) }
    }
  }

  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    for (const service of this.init.services) service.start(this.env)
    await this.init.transport.start({
      onMessage: (from, message) => { this.dispatch(from, message) },
      onLinkChange: (peer, state) => { this.linkChanged(peer, state) },
      onPeerMisbehaved: (peer, error) => { this.peerMisbehaved(peer, error) }
    })
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    for (const service of this.init.services) service.stop?.()
    await this.init.transport.stop()
  }

  status (): Record<string, unknown> {
    const services: Record<string, unknown> = {}
    for (const service of this.init.services) services[service.name] = service.status?.() ?? {}
    return services
  }

  private dispatch (from: NodeId, message: Message): void {
    const owner = this.owners.get(message.type)
    if (owner === undefined) {
      this.init.log.warn({ from, type: message.type }, 'message with no owning service')
      return
    }
    owner.onMessage(from, message)
  }

  private linkChanged (peer: NodeId, state: LinkState): void {
    this.init.log.info({ peer, state }, 'link changed')
    for (const service of this.init.services) service.onLinkChange?.(peer, state)
  }

  private peerMisbehaved (peer: NodeId, error: SynodError): void {
    this.init.log.warn({ peer, code: error.code, reason: error.message }, 'peer sent a frame that does not decode')
    for (const service of this.init.services) service.onPeerMisbehaved?.(peer, error)
    this.init.onPeerMisbehaved?.(peer, error)
  }
}
