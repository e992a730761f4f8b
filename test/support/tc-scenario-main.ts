// Runs tcScenario (tc-scenario.ts) against the real addon and prints its
// transcript as JSON on the last line of stdout. Started by
// test/privileged/fake-vs-kernel.test.ts under `ip netns exec` in a
// throwaway namespace that has lo and the veth SCENARIO_LINK.
//   node test/support/tc-scenario-main.ts OBJECT PIN_ROOT

import { loadBinding } from '../../src/native/binding.ts';
import { tcScenario } from './tc-scenario.ts';

const [objectPath, pinRoot] = process.argv.slice(2);
if (objectPath === undefined || pinRoot === undefined) throw new Error('usage: tc-scenario-main.ts OBJECT PIN_ROOT');
process.stdout.write(`${JSON.stringify(await tcScenario(loadBinding(), objectPath, pinRoot))}\n`);
