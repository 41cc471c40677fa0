import { readFileSync } from 'node:fs'
export { freePort } from '../test/support/ports.js'

export interface BenchResult {
  name: string
  title: string
  header: string[]
  rows: string[][]
  verdict: string
  data: Record<string, unknown>
}

export function percentile (values: number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN
}


export function formatTable (header: string[], rows: string[][]): string {
  const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => (row[column] ?? '').length)))
  const line = (cells: string[]): string => cells.map((cell, column) => column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0)).join('  ')
  return [line(header), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.map(line)].join('\n')
}

// CPU accounting from /proc, shared by the benches that run clusters of processes.

/** CPU seconds (user + system) a process used so far, from /proc (Linux); 0 elsewhere. */
export function cpuSeconds (pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return 0
  }
}

/** The parent process id, from /proc (Linux); 0 elsewhere. */
export function parentPid (pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[1] ?? 0)
  } catch {
    return 0
  }
}

/** CPU seconds the whole machine spent busy (all but idle and iowait), from /proc/stat; 0 elsewhere. */
export function machineBusySeconds (): number {
  try {
    const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    return fields.slice(0, 8).reduce((sum, value, index) => index === 3 || index === 4 ? sum : sum + value, 0) / 100
  } catch {
    return 0
  }
}
