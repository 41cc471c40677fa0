/** A few DOM helpers: elements built from data, never from HTML strings (no injection). */
export type Child = Node | string | number | null | undefined | false

export function h<K extends keyof HTMLElementTagNameMap> (tag: K, props: Record<string, string | number | boolean | EventListener | undefined> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag)
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === false) continue
    if (typeof value === 'function') element.addEventListener(name.replace(/^on/, '').toLowerCase(), value)
    else if (name === 'className') element.className = String(value)
    else element.setAttribute(name, value === true ? '' : String(value))
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue
    element.append(child instanceof Node ? child : String(child))
  }
  return element
}

/** Replaces the children of `parent`. */
export function fill (parent: Element, ...children: Child[]): void {
  parent.replaceChildren(...children.filter((child): child is Node | string | number => child !== null && child !== undefined && child !== false).map((child) => (child instanceof Node ? child : String(child))))
}

export function table (headers: string[], rows: Child[][], testId?: string): HTMLTableElement {
  return h('table', { className: 'grid', ...(testId === undefined ? {} : { 'data-testid': testId }) },
    h('thead', {}, h('tr', {}, ...headers.map((header) => h('th', {}, header)))),
    h('tbody', {}, ...rows.map((row) => h('tr', {}, ...row.map((cell) => h('td', {}, cell))))))
}

export function card (title: string, value: Child, detail?: Child, testId?: string): HTMLElement {
  return h('section', { className: 'card', ...(testId === undefined ? {} : { 'data-testid': testId }) },
    h('div', { className: 'card-title' }, title),
    h('div', { className: 'card-value' }, value),
    detail === undefined ? null : h('div', { className: 'card-detail' }, detail))
}

export function badge (text: string, kind: string): HTMLElement {
  return h('span', { className: `badge badge-${kind}` }, text)
}

export const fmt = (value: number | null | undefined, digits = 1): string => (value === null || value === undefined ? '–' : value.toFixed(digits))

export function duration (ms: number | null): string {
  if (ms === null) return '–'
  const seconds = Math.floor(ms / 1_000)
  if (seconds < 60) return `${seconds}s`
  if (seconds < 3_600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`
  return `${Math.floor(seconds / 3_600)}h ${Math.floor((seconds % 3_600) / 60)}m`
}

/** A palette for members: the same node keeps its colour in every view. */
const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac']
export function colourOf (ids: readonly string[], id: string): string {
  const index = [...ids].sort().indexOf(id)
  return PALETTE[(index < 0 ? 0 : index) % PALETTE.length] as string
}
