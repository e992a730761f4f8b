// The pure half of `npm run bench`'s part `control`: the page's tables and
// the plots are rendered from the JSON data alone, ratios are kube-proxy's
// time over Switchyard's from the same run, a command stopped at its limit
// reads as a lower bound ("> "), and the plots compile with vega-lite and
// render to SVG with vega, offline.

import * as vega from 'vega';
import * as vl from 'vega-lite';
import { describe, expect, it } from 'vitest';
import { type ControlData, plotControl, renderControl } from '../../bench/control.ts';

const DATA: ControlData = {
  quick: true,
  endpointsPerService: 10,
  limitMs: 10_000,
  tools: { iptables: 'iptables-nft-restore v1.8.9 (nf_tables)', nft: 'nftables v1.0.6' },
  spawnMs: 4,
  fullSync: [
    { n: 1000, way: 'switchyard', runsMs: [200, 100, 300], cpuMs: [90, 100, 110], entries: 22_000, stopped: false },
    { n: 1000, way: 'iptables-restore', runsMs: [6000], stopped: false, inputBytes: 3_300_000, inputLines: 43_023 },
    { n: 1000, way: 'iptables-restore-whole', runsMs: [600], stopped: false, inputBytes: 3_300_000, inputLines: 43_023 },
    { n: 1000, way: 'nft', runsMs: [1200], stopped: false, inputBytes: 5_500_000, inputLines: 46_086 },
    { n: 10_000, way: 'switchyard', runsMs: [1000, 2000, 1500], cpuMs: [1300, 1300, 1300], entries: 220_000, stopped: false },
    { n: 10_000, way: 'iptables-restore', runsMs: [10_000], stopped: true, inputBytes: 33_000_000, inputLines: 430_023 },
    { n: 10_000, way: 'iptables-restore-whole', runsMs: [], stopped: false, skipped: 'stopped at the limit at 1,000 Services' },
    { n: 10_000, way: 'nft', runsMs: [10_000], stopped: true, inputBytes: 55_700_000, inputLines: 460_086 },
  ],
  change: [
    { way: 'switchyard', resident: 1000, samplesMs: [1, 2, 3, 4], stopped: false, stepsMs: { compile: [0.1, 0.2], diff: [0.3, 0.4], apply: [0.5, 3] } },
    { way: 'iptables-restore', resident: 1000, samplesMs: [80, 90], stopped: false },
    { way: 'iptables-restore-whole', resident: 1000, samplesMs: [], stopped: false, skipped: 'the 1,000-Service table did not load within the limit' },
    { way: 'nft', resident: 1000, samplesMs: [60, 10_000], stopped: true },
  ],
};

describe("bench part control's page", () => {
  const md = renderControl(DATA);

  it('full sync: medians, ratios from the same run, lower bounds for stopped commands, "not run" after a stop', () => {
    expect(md).toContain('| 1,000 | 200 | 100 | 6000 | 30.0× | 600 | 3.0× | 1200 | 6.0× |');
    expect(md).toContain('| 10,000 | 1500 | 1300 | > 10,000 | > 6.7× | not run | - | > 10,000 | > 6.7× |');
    expect(md).toContain('1,000: restore 43,023 lines (3.3 MB), nft 46,086 lines (5.5 MB), Switchyard 22,000 map entries');
  });

  it('one change: p50 and p99 with their ratios, the reason a way was not run', () => {
    expect(md).toContain('### One endpoint change, 1,000 Services resident (ms)');
    // p50 of [1, 2, 3, 4] by nearest rank is 2; iptables 80 -> 40x; p99 4 and 90 -> 22.5x.
    expect(md).toMatch(/\| kube-proxy iptables [^|]* \| 2 \| 80\.0 \| 90\.0 \| 40\.0× \| 22\.5× \|/);
    expect(md).toContain('(the 1,000-Service table did not load within the limit) | 0 | not run | not run | - | - |');
    expect(md).toContain("Switchyard's steps, p50 / p99 (ms): compileChanged 0.10 / 0.20, scoped diff 0.30 / 0.40, apply 0.50 / 3.00.");
    expect(md).toMatch(/\| kube-proxy nftables[^|]* \| 2 \| > 10,000 \| > 10,000 \| > 5,000× \| > 2,500× \|/);
  });

  it('the plots compile with vega-lite and render to SVG with vega', async () => {
    const plots = plotControl(DATA);
    expect(plots.map((p) => p.file)).toEqual(['control-full-sync.svg', 'control-one-change.svg']);
    for (const p of plots) {
      const view = new vega.View(vega.parse(vl.compile(p.spec).spec), { renderer: 'none' });
      const svg = await view.toSVG();
      view.finalize();
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg).toContain('Switchyard');
    }
  });
});
