/**
 * An indexed binary heap of small integer handles (an upstream's slot in its balancer), under a
 * caller's order: the balancers change one upstream's key (a pick, a request starting or ending)
 * and restore the heap from where that handle sits.
 *
 * Complexity: `push`, `update` O(log n); `peek` O(1); `heapify` O(n); `firstAccepted` visits at
 * most 2r + 1 nodes, where r is the number of rejected handles it meets (each rejected node
 * exposes its two children, an accepted node closes its subtree), so O(1 + r) when a pick
 * avoids r upstreams.
 *
 * Reference: the textbook indexed priority queue (Sedgewick and Wayne, "Algorithms", 4th ed.,
 * section 2.4, IndexMinPQ), the structure Envoy's and HAProxy's least-connection balancers keep
 * their hosts in.
 */
export class IndexedHeap {
  private readonly heap: number[] = []
  /** handle → its index in `heap`, or -1. */
  private readonly position: number[] = []

  /** `precedes(a, b)`: handle a comes out before handle b. Must be a strict total order. */
  constructor (private readonly precedes: (a: number, b: number) => boolean) {}

  get size (): number { return this.heap.length }

  clear (): void {
    this.heap.length = 0
    this.position.length = 0
  }

  /** The first handle, or -1 when empty. */
  peek (): number { return this.heap.length === 0 ? -1 : this.heap[0] }

  push (handle: number): void {
    this.heap.push(handle)
    this.position[handle] = this.heap.length - 1
    this.siftUp(this.heap.length - 1)
  }

  /** Puts handles 0..count-1 in (any order), then restores the heap in O(count). */
  heapify (count: number): void {
    this.clear()
    for (let handle = 0; handle < count; handle++) {
      this.heap.push(handle)
      this.position[handle] = handle
    }
    this.reorder()
  }

  /** Restores the whole heap in O(n), after every key may have moved. */
  reorder (): void {
    for (let index = (this.heap.length >> 1) - 1; index >= 0; index--) this.siftDown(index)
  }

  /** The handle's key changed: move it up or down to its place. */
  update (handle: number): void {
    const index = this.position[handle]
    if (index === undefined || index < 0) return
    if (!this.siftUp(index)) this.siftDown(index)
  }

  /** The first handle in heap order that `accept` takes, or -1 when it takes none. */
  firstAccepted (accept: (handle: number) => boolean): number {
    const heap = this.heap
    if (heap.length === 0) return -1
    if (accept(heap[0])) return heap[0]
    let best = -1
    const pending = [0]
    while (pending.length > 0) {
      const index = pending.pop() as number
      const handle = heap[index]
      if (best >= 0 && !this.precedes(handle, best)) continue // its whole subtree comes after best
      if (accept(handle)) {
        best = handle
        continue
      }
      const left = index * 2 + 1
      if (left < heap.length) pending.push(left)
      if (left + 1 < heap.length) pending.push(left + 1)
    }
    return best
  }

  /** True when the item moved. */
  private siftUp (index: number): boolean {
    const heap = this.heap
    const handle = heap[index]
    const start = index
    while (index > 0) {
      const parent = (index - 1) >> 1
      if (!this.precedes(handle, heap[parent])) break
      heap[index] = heap[parent]
      this.position[heap[index]] = index
      index = parent
    }
    heap[index] = handle
    this.position[handle] = index
    return index !== start
  }

  private siftDown (index: number): void {
    const heap = this.heap
    const handle = heap[index]
    for (;;) {
      const left = index * 2 + 1
      if (left >= heap.length) break
      const right = left + 1
      const child = right < heap.length && this.precedes(heap[right], heap[left]) ? right : left
      if (!this.precedes(heap[child], handle)) break
      heap[index] = heap[child]
      this.position[heap[index]] = index
      index = child
    }
    heap[index] = handle
    this.position[handle] = index
  }
}
