/** A binary min-heap under a caller's order: the simulator's event queue, a block's best transactions. */
export class Heap<T> {
  private readonly items: T[] = []

  /** `precedes(a, b)`: a comes out before b. Give a total order for a deterministic pop order. */
  constructor (private readonly precedes: (a: T, b: T) => boolean) {}

  get size (): number { return this.items.length }

  peek (): T | undefined { return this.items[0] }

  push (item: T): void {
    const items = this.items
    items.push(item)
    let index = items.length - 1
    while (index > 0) {
      const parent = (index - 1) >> 1
      if (!this.precedes(item, items[parent] as T)) break
      items[index] = items[parent] as T
      index = parent
    }
    items[index] = item
  }

  pop (): T | undefined {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (top === undefined || last === undefined || items.length === 0) return top
    let index = 0
    for (;;) {
      const left = index * 2 + 1
      if (left >= items.length) break
      const right = left + 1
      const child = right < items.length && this.precedes(items[right] as T, items[left] as T) ? right : left
      if (!this.precedes(items[child] as T, last)) break
      items[index] = items[child] as T
      index = child
    }
    items[index] = last
    return top
  }
}
