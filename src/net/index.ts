export { HelloService, helloGreet, helloAck, defaultHelloLimits } from './hello.js'
export type { HelloLimits, HelloStatus, PeerView } from './hello.js'
