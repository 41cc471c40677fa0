/**
 * Node.js 20 lacks `Promise.withResolvers` (added in Node 22); current js-libp2p calls it.
 * This module installs a spec-compatible polyfill when, and only when, it is missing.
 * It is imported first by the `synod` entry point and preloaded by the test runner
 * (`node --import ./dist/src/compat/promise-with-resolvers.js`). Delete it once Node 20 is dropped.
 */
interface Resolvers<T> {
  promise: Promise<T>
  resolve: (value: T | PromiseLike<T>) => void
  reject: (reason?: unknown) => void
}

type PromiseWithResolversHost = PromiseConstructor & { withResolvers?: <T>() => Resolvers<T> }

const host = Promise as PromiseWithResolversHost
if (typeof host.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    enumerable: false,
    value: function withResolvers<T> (this: PromiseConstructor): Resolvers<T> {
      let resolve!: Resolvers<T>['resolve']
      let reject!: Resolvers<T>['reject']
      const promise = new this<T>((onResolve, onReject) => { resolve = onResolve; reject = onReject })
      return { promise, resolve, reject }
    }
  })
}

export {}
