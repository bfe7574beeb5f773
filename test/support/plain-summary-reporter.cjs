// Jest reporter that ends the run with one plain line, "N passed, N failed, N skipped", which CI
// systems that do not parse Jest's own summary can read.
class PlainSummaryReporter {
  onRunComplete(_contexts, results) {
    process.stdout.write(
      `\n${results.numPassedTests} passed, ${results.numFailedTests} failed, ${results.numPendingTests} skipped\n`,
    );
  }
}
module.exports = PlainSummaryReporter;
