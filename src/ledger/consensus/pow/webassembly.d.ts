/**
 * The part of the WebAssembly JavaScript API the mining kernel uses. Node 20 has it; its type
 * definitions (@types/node 20, without the DOM library) do not declare it.
 */
declare namespace WebAssembly {
  class Module {
    constructor (bytes: Uint8Array)
  }
  class Instance {
    constructor (module: Module, imports: object)
    readonly exports: unknown
  }
}
