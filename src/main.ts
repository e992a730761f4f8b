// Entry point. Signals are turned into an AbortSignal before anything heavy
// loads, so a SIGTERM that arrives during start-up (a second or more under
// emulation) is never lost: `switchyard run` stops in order whenever it
// comes. Other commands end at once, as with the default action.

const stop = new AbortController();
const isRun = process.argv[2] === 'run';
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => (isRun ? stop.abort(sig) : process.exit(sig === 'SIGTERM' ? 143 : 130)));
}

const { main } = await import('./cli/main.ts');
process.exitCode = await main(process.argv.slice(2), stop.signal);
