/**
 * A uPlot time-series chart that follows its container's width and redraws when its data change
 * (the data come from the app's one live feed; charts never fetch on their own).
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

/** A time of day as hh:mm:ss. */
function clock(seconds: number): string {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

/** One line of a chart. */
export interface Line {
  readonly label: string;
  readonly color: string;
  /** Draw points only (per-request values). */
  readonly points?: boolean;
}

/** A chart of `lines` over `data` ([times in s, ...one array per line]); `summary` adds to what a screen reader hears of it. */
export function Chart({
  title,
  lines,
  data,
  unit,
  summary,
}: {
  title: string;
  lines: readonly Line[];
  data: uPlot.AlignedData;
  unit: string;
  summary?: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    const el = box.current!;
    // A canvas knows no CSS colour: the axes take the text colour of the page's scheme at each draw.
    const ink = () => getComputedStyle(el).color;
    const opts: uPlot.Options = {
      width: Math.max(el.clientWidth, 200),
      height: 180,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(max || 0, 1) * 1.1] } },
      axes: [
        // Whole seconds at most: samples come once a second.
        {
          stroke: ink,
          grid: { stroke: 'rgba(128,128,128,0.2)' },
          space: 70,
          incrs: [1, 5, 10, 15, 30, 60, 120, 300],
          values: (_u, splits) => splits.map(clock),
        },
        { stroke: ink, label: unit, grid: { stroke: 'rgba(128,128,128,0.2)' } },
      ],
      series: [
        {},
        ...lines.map((l) => ({
          label: l.label,
          stroke: l.color,
          width: 2,
          // A missing value (no data that second, or the feed away) breaks the line.
          spanGaps: false,
          ...(l.points ? { paths: () => null, points: { show: true, size: 6, fill: l.color } } : { points: { show: false } }),
        })),
      ],
    };
    plot.current = new uPlot(opts, data, el);
    const resize = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(el.clientWidth, 200), height: 180 }));
    resize.observe(el);
    // The scheme changed (light to dark or back): draw the axes again in its colours.
    const scheme = matchMedia('(prefers-color-scheme: dark)');
    const recolor = () => plot.current?.redraw(false);
    scheme.addEventListener('change', recolor);
    return () => {
      scheme.removeEventListener('change', recolor);
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // The chart is built once; data changes go through setData below.
  }, []);

  useEffect(() => plot.current?.setData(data), [data]);

  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} role="img" aria-label={`${title} over the last minutes${summary ? `: ${summary}` : ''}`} />
    </figure>
  );
}
