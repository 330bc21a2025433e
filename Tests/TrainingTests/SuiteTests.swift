import Foundation
import XCTest
import Methods
import Training

/// The suite's bookkeeping: which run comes next, learning rates chosen on validation only, the table.
final class SuiteTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("suite-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func makeSuite(seeds: [UInt64] = [0, 1], grid: [Float] = [0.3, 1, 3]) throws -> BenchmarkSuite {
        try BenchmarkSuite(tasks: ["fmnist-1k", "count-1k"], methods: ["lora", "shira"], seeds: seeds,
                           learningRateMultipliers: grid, budget: SuiteBudget(epochs: 2),
                           store: SuiteRecordStore(directory: directory))
    }

    func record(_ run: SuiteRun, validation: Double, test: Double, budget: SuiteBudget = SuiteBudget(epochs: 2)) -> SuiteRecord {
        SuiteRecord(task: run.task, method: run.method, seed: run.seed, learningRateMultiplier: run.learningRateMultiplier,
                    learningRate: 1e-3 * run.learningRateMultiplier, budget: budget, bestValidationAccuracy: validation,
                    bestEpoch: 1, testAccuracy: test, trainableParameters: 1234, secondsPerStep: 1.5, totalSeconds: 60,
                    finished: "2026-11-23T00:00:00Z")
    }

    func testGridWithFirstSeedComesBeforeOtherSeeds() throws {
        let suite = try makeSuite()
        var order: [SuiteRun] = []
        while let next = try suite.nextRun() {
            order.append(next)
            // Validation prefers multiplier 3 on every cell; test prefers 0.3 (it must not matter).
            let validation = next.learningRateMultiplier == 3 ? 0.9 : 0.5
            let test = next.learningRateMultiplier == 0.3 ? 0.99 : (next.seed == 0 ? 0.7 : 0.8)
            try suite.store.save(record(next, validation: validation, test: test))
        }
        XCTAssertEqual(order.count, 2 * 2 * 3 + 2 * 2, "three grid runs per cell for seed 0, then one per cell for seed 1")
        XCTAssertTrue(order.prefix(12).allSatisfy { $0.seed == 0 })
        XCTAssertTrue(order.suffix(4).allSatisfy { $0.seed == 1 && $0.learningRateMultiplier == 3 })
        XCTAssertEqual(try suite.remainingRunCount(), 0)
        let cell = try XCTUnwrap(try suite.cell(task: "fmnist-1k", method: "lora"))
        XCTAssertEqual(cell.multiplier, 3, "chosen on validation, not test")
        XCTAssertEqual(cell.accuracies, [0.7, 0.8])
        XCTAssertEqual(cell.mean, 0.75, accuracy: 1e-12)
        XCTAssertEqual(cell.spread, (0.005 as Double).squareRoot(), accuracy: 1e-12)
        let table = try suite.markdownTable()
        XCTAssertTrue(table.contains("| lora | 1,234 | 75.0 ± 7.1 | 75.0 ± 7.1 | 75.0 | 1.50 |"), table)
        XCTAssertFalse(table.contains("*"), "all tasks finished, so no partial means")
    }

    func testTiesPreferTheDefaultRateAndPartialCellsAreMarked() throws {
        let suite = try makeSuite(seeds: [0, 1, 2])
        for multiplier: Float in [0.3, 1, 3] {
            try suite.store.save(record(SuiteRun(task: "fmnist-1k", method: "lora", seed: 0, learningRateMultiplier: multiplier),
                                        validation: 0.8, test: 0.6))
        }
        XCTAssertEqual(try suite.selectedMultiplier(task: "fmnist-1k", method: "lora"), 1)
        XCTAssertNil(try suite.selectedMultiplier(task: "fmnist-1k", method: "shira"), "grid not finished")
        let table = try suite.markdownTable()
        XCTAssertTrue(table.contains("| lora | 1,234 | 60.0 (1) | — | 60.0* |"), table)
        XCTAssertTrue(table.contains("| shira | — | — | — | — | — |"), table)
    }

    func testRecordsOfAnotherBudgetAreIgnored() throws {
        let suite = try makeSuite(seeds: [0], grid: [1])
        let run = SuiteRun(task: "fmnist-1k", method: "lora", seed: 0, learningRateMultiplier: 1)
        try suite.store.save(record(run, validation: 0.9, test: 0.9, budget: SuiteBudget(epochs: 5)))
        XCTAssertEqual(try suite.nextRun(), run)
    }

    func testCorruptRecordIsReportedWithItsPath() throws {
        let suite = try makeSuite(seeds: [0], grid: [1])
        let run = SuiteRun(task: "fmnist-1k", method: "lora", seed: 0, learningRateMultiplier: 1)
        try suite.store.save(record(run, validation: 0.9, test: 0.9))
        let file = suite.store.url(task: "fmnist-1k", method: "lora", budget: suite.budget, learningRate: 1e-3, seed: 0)
        try Data("{\"task\": 3".utf8).write(to: file)
        XCTAssertThrowsError(try suite.nextRun()) { error in
            XCTAssertTrue("\(error)".contains(file.path), "\(error)")
        }
    }

    /// Records are named by the learning rate itself: after a method's default rate changes, a record of the old
    /// rate (also one under the older multiplier-based name) is not taken for the new one, and is not overwritten.
    func testRecordsOfAnotherLearningRateAreNotReused() throws {
        let suite = try BenchmarkSuite(tasks: ["fmnist-1k"], methods: ["neat", "lora"], seeds: [0], learningRateMultipliers: [1],
                                       budget: SuiteBudget(epochs: 2), store: SuiteRecordStore(directory: directory))
        XCTAssertEqual(suite.learningRate(method: "neat", multiplier: 1), TrainingConfiguration.defaultLearningRate(method: "neat"))
        XCTAssertNotEqual(suite.learningRate(method: "neat", multiplier: 1), 1e-3, "the test needs NEAT's default to differ from LoRA's")
        let neat = SuiteRun(task: "fmnist-1k", method: "neat", seed: 0, learningRateMultiplier: 1)
        let lora = SuiteRun(task: "fmnist-1k", method: "lora", seed: 0, learningRateMultiplier: 1)
        // Both written as the earlier versions did: multiplier in the name, rate 1e-3 inside.
        for run in [neat, lora] {
            let legacy = directory.appendingPathComponent("fmnist-1k/\(run.method)/e2-b32-r112-lr1-s0.json")
            try FileManager.default.createDirectory(at: legacy.deletingLastPathComponent(), withIntermediateDirectories: true)
            try JSONEncoder().encode(record(run, validation: 0.9, test: 0.8)).write(to: legacy)
        }
        XCTAssertEqual(try suite.nextRun(), neat, "NEAT's record holds the old rate, so NEAT runs again")
        XCTAssertEqual(try suite.pendingGridRuns(), [neat], "LoRA's legacy record holds its current rate and still counts")
        var fresh = record(neat, validation: 0.5, test: 0.4)
        fresh.learningRate = suite.learningRate(method: "neat", multiplier: 1)
        try suite.store.save(fresh)
        XCTAssertNil(try suite.nextRun())
        XCTAssertEqual(try suite.cell(task: "fmnist-1k", method: "neat")?.accuracies, [0.4])
        let old = try JSONDecoder().decode(SuiteRecord.self, from: Data(contentsOf: directory.appendingPathComponent("fmnist-1k/neat/e2-b32-r112-lr1-s0.json")))
        XCTAssertEqual(old.testAccuracy, 0.8, "the old record is kept")
    }

    /// Variants (`name:key=value:...`) are cells of their own: their runs use the method with those options, their
    /// records live in their own folders, and bad assignments are refused naming the variant.
    func testMethodVariantsAreTheirOwnCells() throws {
        let variant = try SuiteMethod("shira:r=4:target_modules=re:.*(query|value)")
        XCTAssertEqual(variant.name, "shira")
        XCTAssertEqual(variant.assignments, ["r=4", "target_modules=re:.*(query|value)"], "a piece without '=' continues the value")
        XCTAssertEqual(variant.directoryName, "shira+r=4+target_modules=re+.__query_value_")
        let suite = try BenchmarkSuite(tasks: ["fmnist-1k"], methods: ["lora", "lora:r=4:lora_alpha=4"], seeds: [0, 1],
                                       learningRateMultipliers: [1], budget: SuiteBudget(epochs: 2),
                                       store: SuiteRecordStore(directory: directory))
        let small = SuiteRun(task: "fmnist-1k", method: "lora:r=4:lora_alpha=4", seed: 1, learningRateMultiplier: 1)
        let configuration = try suite.configuration(for: small)
        XCTAssertEqual(configuration.method, "lora")
        let built = try XCTUnwrap(try configuration.makeMethod() as? LoRA)
        XCTAssertEqual(built.config.r, 4)
        XCTAssertEqual(built.config.loraAlpha, 4)
        XCTAssertEqual(built.config.seed, 1)
        let plain = try suite.configuration(for: SuiteRun(task: "fmnist-1k", method: "lora", seed: 0, learningRateMultiplier: 1))
        XCTAssertEqual(try XCTUnwrap(try plain.makeMethod() as? LoRA).config.r, 8)
        try suite.store.save(record(SuiteRun(task: "fmnist-1k", method: "lora", seed: 0, learningRateMultiplier: 1), validation: 0.9, test: 0.9))
        XCTAssertEqual(try suite.nextRun()?.method, "lora:r=4:lora_alpha=4", "the plain method's record is not the variant's")
        XCTAssertThrowsError(try SuiteMethod("lora:rank=4")) { error in
            XCTAssertTrue("\(error)".contains("lora:rank=4") && "\(error)".contains("lora_alpha"), "\(error)")
        }
        XCTAssertThrowsError(try SuiteMethod("lora:r=four")) { error in XCTAssertTrue("\(error)".contains("r=four") || "\(error)".contains("four"), "\(error)") }
        XCTAssertThrowsError(try BenchmarkSuite(tasks: ["fmnist-1k"], methods: ["lora", "lora"], seeds: [0], learningRateMultipliers: [1],
                                                budget: SuiteBudget(), store: SuiteRecordStore(directory: directory)))
    }

    func testInvalidSuitesAreRefused() {
        let store = SuiteRecordStore(directory: directory)
        XCTAssertThrowsError(try BenchmarkSuite(tasks: ["nope-1k"], methods: ["lora"], seeds: [0], learningRateMultipliers: [1],
                                                budget: SuiteBudget(), store: store))
        XCTAssertThrowsError(try BenchmarkSuite(tasks: ["fmnist-1k"], methods: ["dora"], seeds: [0], learningRateMultipliers: [1],
                                                budget: SuiteBudget(), store: store)) { error in
            XCTAssertTrue("\(error)".contains("shira"), "lists the valid methods: \(error)")
        }
        XCTAssertThrowsError(try BenchmarkSuite(tasks: ["fmnist-1k"], methods: ["lora"], seeds: [0], learningRateMultipliers: [0],
                                                budget: SuiteBudget(), store: store))
        XCTAssertThrowsError(try BenchmarkSuite(tasks: ["fmnist-1k"], methods: ["lora"], seeds: [], learningRateMultipliers: [1],
                                                budget: SuiteBudget(), store: store))
    }

    func testSectionReplacementKeepsTheRestOfTheFile() throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent("B.md")
        try Data("# Benchmarks\n\nintro\n".utf8).write(to: file)
        try BenchmarkSuite.replaceSection(in: file, with: "first", heading: "## Suite")
        try Data((try String(contentsOf: file, encoding: .utf8) + "\n## Later\n\ntail\n").utf8).write(to: file)
        try BenchmarkSuite.replaceSection(in: file, with: "second", heading: "## Suite")
        let text = try String(contentsOf: file, encoding: .utf8)
        XCTAssertEqual(text, "# Benchmarks\n\nintro\n\n## Suite\n\n<!-- suite:begin -->\nsecond\n<!-- suite:end -->\n\n## Later\n\ntail\n")
        try BenchmarkSuite.replaceSection(in: file, with: "fair one", heading: "## Suite: fair", marker: "fair")
        try BenchmarkSuite.replaceSection(in: file, with: "fair two", heading: "## Suite: fair", marker: "fair")
        let both = try String(contentsOf: file, encoding: .utf8)
        XCTAssertTrue(both.hasPrefix(text), "a named section leaves the main one alone")
        XCTAssertTrue(both.hasSuffix("\n## Suite: fair\n\n<!-- suite-fair:begin -->\nfair two\n<!-- suite-fair:end -->\n"), both)
    }
}
