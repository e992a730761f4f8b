// A vitest reporter for runs where nothing may skip (CI, SY_REQUIRE_PRIVILEGED=1):
// every skipped or todo test is named and the run fails.
import type { Reporter, TestCase, TestModule } from 'vitest/node';

export default class NoSkipReporter implements Reporter {
  #skipped: string[] = [];

  onTestCaseResult(test: TestCase): void {
    const state = test.result().state;
    if (state === 'skipped') this.#skipped.push(`${test.module.moduleId}: ${test.fullName}`);
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    for (const m of modules) if (m.state() === 'skipped') this.#skipped.push(`${m.moduleId}: the whole file`);
    if (this.#skipped.length === 0) return;
    process.stderr.write(`\nskipped tests are not allowed in this run (CI or SY_REQUIRE_PRIVILEGED=1):\n  ${this.#skipped.join('\n  ')}\n`);
    process.exitCode = 1;
  }
}
