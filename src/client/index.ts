/**
 * The client subsystem's public face (docs/layering.md), importable as `synod/client`: a
 * program's way to the key-value store over the nodes' HTTP API. See docs/store.md "Client SDK
 * and CLI".
 *
 * ```ts
 * import { SynodClient, SynodClientError } from 'synod/client'
 * const client = new SynodClient({ endpoints: ['http://127.0.0.1:7200'] })
 * const { version } = await client.put('users/42', 'Ada')
 * const found = await client.getString('users/42')  // { value: 'Ada', version } or null
 * await client.close()
 * ```
 */
export * from './errors.js'
export * from './retry.js'
export * from './client.js'
export type { RingDescription, RingMemberDescription, StoreErrorCode } from '../store/index.js'
export * from './levels.js'
