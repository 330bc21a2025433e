import ArgumentParser
import Collectives
import Foundation
import Methods
import Training

/// Every method on every 1k image task with one budget; writes the VTAB-style table to BENCHMARKS.md.
struct SuiteBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suite",
        abstract: "Run every method on every 1k image task with the same budget and write a VTAB-style table.",
        discussion: """
        Learning rates are chosen on validation only: with the first seed every cell trains once per --lr-grid
        multiplier of the method's default rate; the best validation accuracy picks the rate used for the other
        seeds. Each finished run is saved under --results, so rerunning the command continues where it stopped
        (records from a different budget are kept apart). The table is rewritten after every run.
        Example (the full protocol): peft bench suite --seeds 3 --epochs 10
        Example (quick look):        peft bench suite --tasks fmnist-1k --methods linear lora shira --seeds 1 --lr-grid 1 --epochs 3
        """)
    @OptionGroup var global: GlobalOptions
    @Option(parsing: .upToNextOption, help: "Tasks (default: every image task).")
    var tasks: [String] = ["fmnist-1k", "digits-1k", "shapes-loc-1k", "shapes-ori-1k", "count-1k"]
    @Option(parsing: .upToNextOption, help: "Methods (default: all, baselines included), or variants as name:key=value:... (e.g. lora:r=4:lora_alpha=4, rlrr:identity_start=true).")
    var methods: [String] = MethodRegistry.names
    @Option(help: "Number of seeds (0, 1, ...).") var seeds = 3
    @Option(help: "Learning-rate multipliers of each method's default, comma-separated (chosen on validation).")
    var lrGrid = "0.3,1,3"
    @Option(help: "Backbone of the image tasks (see `peft models`; the table's figures are for dinov2-s14).") var model = "dinov2-s14"
    @Option(help: "Epochs per run.") var epochs = 10
    @Option(help: "Batch size.") var batchSize = 32
    @Option(help: "Image side in pixels.") var resolution = 112
    @Option(help: "Evaluate on at most N validation/test examples (default: all).") var maxEval: Int?
    @Option(help: "Directory of per-run result records.") var results = "benchmarks/suite"
    @Option(help: "Markdown file whose suite section is rewritten after every run ('' for none).") var table = "BENCHMARKS.md"
    @Option(help: "The --table section to write: NAME writes between <!-- suite-NAME:begin --> and <!-- suite-NAME:end --> (added under '## Suite: NAME' when absent); default: the main suite section.")
    var section: String?
    @Option(help: "Stop after this many runs (the command can be run again to continue).") var maxRuns: Int?
    @Option(help: "Do not start a new run after this many minutes.") var timeLimit: Double?
    @Flag(help: "Only print the table from the records already saved.") var tableOnly = false

    func run() throws {
        let group = try joinProcessGroup(verbose: global.verbose)
        try global.announce(quiet: !group.isLeader)
        let multipliers = try lrGrid.split(separator: ",").map { text -> Float in
            guard let value = Float(text.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--lr-grid: '\(text)' is not a number")
            }
            return value
        }
        guard seeds > 0 else { throw ValidationError("--seeds must be at least 1") }
        if let section, section.isEmpty || !section.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) {
            throw ValidationError("--section '\(section)': use letters, digits and '-' only")
        }
        let budget = SuiteBudget(epochs: epochs, batchSize: batchSize, resolution: resolution, maxEvaluationExamples: maxEval)
        var suite = try BenchmarkSuite(tasks: tasks, methods: methods, seeds: (0..<UInt64(seeds)).map { $0 },
                                       learningRateMultipliers: multipliers, budget: budget,
                                       store: SuiteRecordStore(directory: URL(fileURLWithPath: recordDirectory)))
        suite.model = model
        let start = Date()
        if group.isDistributed {
            try runSpread(suite, over: group, start: start)
            group.finalize()
            return
        }
        var done = 0
        while !tableOnly, let next = try suite.nextRun() {
            if let maxRuns, done >= maxRuns { printError("suite: stopping after \(done) runs (--max-runs)"); break }
            if let timeLimit, Date().timeIntervalSince(start) > timeLimit * 60 {
                printError("suite: stopping, \(timeLimit) minutes used (--time-limit)"); break
            }
            let remaining = try suite.remainingRunCount()
            printError("suite: \(next.task) \(next.method) lr x\(next.learningRateMultiplier) seed \(next.seed) (\(remaining) runs left, budget \(budget.tag))")
            let record = try suite.perform(next) { printError("  " + $0) }
            done += 1
            printError(String(format: "suite: %@ %@ lr %g seed %llu -> validation %.2f%%, test %.2f%%, %.3f s/step, %.0f s",
                              record.task, record.method, Double(record.learningRate), record.seed,
                              100 * record.bestValidationAccuracy, 100 * record.testAccuracy, record.secondsPerStep,
                              record.totalSeconds))
            try writeTable(suite)
        }
        let markdown = try suite.markdownTable()
        print(markdown)
        try writeTable(suite)
    }

    /// Under `mpirun -n N`: the runs are dealt out over the ranks (run i to rank i mod N), first the learning-rate
    /// grid, then, once every rank has every grid record, the other seeds. Each rank trains its runs alone (with
    /// its share of the machine's cores) and saves their records; the records are then exchanged, so every rank's
    /// store holds them all (also without a shared file system), and rank 0 writes the table.
    func runSpread(_ suite: BenchmarkSuite, over group: ProcessGroup, start: Date) throws {
        // Ranks reach the record exchange when their last run of a phase ends, and runs differ in length by many
        // minutes, so the exchange may wait up to a day rather than PEFT_MPI_TIMEOUT (a rank that dies still ends
        // the job through mpirun; a hung one is still named, later).
        let patience = group.timeout
        if patience > 0 { group.timeout = max(patience, 24 * 3600) }
        defer { group.timeout = patience }
        var done = 0
        for phase in ["learning-rate grid", "other seeds"] {
            let pending = tableOnly ? [] : try (phase == "other seeds" ? suite.pendingSeedRuns() : suite.pendingGridRuns())
            let mine = pending.enumerated().filter { $0.offset % group.size == group.rank }.map(\.element)
            if group.isLeader && !pending.isEmpty {
                printError("suite: \(phase): \(pending.count) runs over \(group.size) ranks")
            }
            var records: [SuiteRecord] = []
            for next in mine {
                if let maxRuns, done >= maxRuns { printError("suite: rank \(group.rank) stopping after \(done) runs (--max-runs)"); break }
                if let timeLimit, Date().timeIntervalSince(start) > timeLimit * 60 {
                    printError("suite: rank \(group.rank) stopping, \(timeLimit) minutes used (--time-limit)"); break
                }
                printError("suite: rank \(group.rank): \(next.task) \(next.method) lr x\(next.learningRateMultiplier) seed \(next.seed)")
                let record = try suite.perform(next) { _ in }
                done += 1
                records.append(record)
                printError(String(format: "suite: rank %d: %@ %@ lr %g seed %llu -> validation %.2f%%, test %.2f%%, %.0f s",
                                  group.rank, record.task, record.method, Double(record.learningRate), record.seed,
                                  100 * record.bestValidationAccuracy, 100 * record.testAccuracy, record.totalSeconds))
            }
            let gathered = try group.allgather(Array(try JSONEncoder().encode(records)), what: "the suite records")
            for (rank, bytes) in gathered.enumerated() where rank != group.rank {
                let theirs: [SuiteRecord]
                do { theirs = try JSONDecoder().decode([SuiteRecord].self, from: Data(bytes)) } catch {
                    throw ValidationError("suite: the records rank \(rank) sent are not readable: \(error)")
                }
                for record in theirs where try suite.store.record(task: record.task, method: record.method, budget: record.budget,
                                                                  multiplier: record.learningRateMultiplier,
                                                                  learningRate: record.learningRate, seed: record.seed) == nil {
                    try suite.store.save(record)
                }
            }
        }
        guard group.isLeader else { return }
        print(try suite.markdownTable())
        try writeTable(suite)
    }

    /// Where the records go: `--results`, with a folder per backbone other than the default one (records do not
    /// name their backbone).
    var recordDirectory: String { model == "dinov2-s14" ? results : results + "/" + model }

    func writeTable(_ suite: BenchmarkSuite) throws {
        guard !table.isEmpty else { return }
        let budget = suite.budget
        let header = """
        Budget per run: \(budget.epochs) epochs of the 800 training images, batch \(budget.batchSize), \(budget.resolution) px, \
        \(suite.model == "dinov2-s14" ? "DINOv2-S/14" : suite.model), AdamW with warm-up and cosine decay, label smoothing 0.1, best-on-validation weights tested once\
        \(budget.maxEvaluationExamples.map { ", evaluation capped at \($0) examples" } ?? ""). \
        Seeds: \(suite.seeds.count). Test accuracy in %. Regenerate with: \
        `peft bench suite --seeds \(suite.seeds.count) --epochs \(budget.epochs) --lr-grid \(lrGrid)\
        \(suite.tasks == ["fmnist-1k", "digits-1k", "shapes-loc-1k", "shapes-ori-1k", "count-1k"] ? "" : " --tasks " + suite.tasks.joined(separator: " "))\
        \(suite.methods == MethodRegistry.names ? "" : " --methods " + suite.methods.joined(separator: " "))\
        \(model == "dinov2-s14" ? "" : " --model " + model)\(section.map { " --section " + $0 } ?? "")` \
        (records in `\(recordDirectory)/`).

        """
        try BenchmarkSuite.replaceSection(in: URL(fileURLWithPath: table), with: header + "\n" + (try suite.markdownTable()),
                                          heading: section.map { "## Suite: \($0)" } ?? "## Suite: every method on every 1k image task (`peft bench suite`)",
                                          marker: section)
    }
}
