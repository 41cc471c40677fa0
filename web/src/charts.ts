/** Live time-series charts on uPlot: a rolling window of the last points pushed. */
import uPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'

export const CHART_POINTS_MAX = 120

export class LiveChart {
  private readonly plot: uPlot
  private readonly data: number[][]

  constructor (parent: HTMLElement, title: string, unit: string, series: Array<{ label: string, colour: string }>, width = 560, height = 200) {
    this.data = [[], ...series.map(() => [])]
    this.plot = new uPlot({
      title,
      width,
      height,
      scales: { x: { time: true }, y: { range: (_u, min, max) => [0, Math.max(1, max, min)] } },
      axes: [{}, { label: unit, size: 60 }],
      series: [{}, ...series.map((entry) => ({ label: entry.label, stroke: entry.colour, width: 2, spanGaps: true, points: { show: false } }))]
    }, this.data as uPlot.AlignedData, parent)
  }

  /** Appends one point per series (null for no value) at `atMs`. */
  push (atMs: number, values: Array<number | null>): void {
    (this.data[0] as number[]).push(atMs / 1_000)
    values.forEach((value, index) => { (this.data[index + 1] as Array<number | null>).push(value) })
    if ((this.data[0] as number[]).length > CHART_POINTS_MAX) for (const column of this.data) column.shift()
    this.plot.setData(this.data as uPlot.AlignedData)
  }

  points (): number {
    return (this.data[0] as number[]).length
  }

  destroy (): void {
    this.plot.destroy()
  }
}
