import Foundation
import Methods

/// One training run the suite still has to do.
public struct SuiteRun: Sendable, Equatable {
    public var task: String
    public var method: String
    public var seed: UInt64
    public var learningRateMultiplier: Float

    public init(task: String, method: String, seed: UInt64, learningRateMultiplier: Float) {
        self.task = task
        self.method = method
        self.seed = seed
        self.learningRateMultiplier = learningRateMultiplier
    }
}

/// Every method on every task with one shared budget, VTAB-style.
///
/// Learning rates are chosen on validation only: with the first seed, each (task, method) cell trains once per
/// multiplier of the method's default learning rate, and the multiplier with the best validation accuracy is
/// kept (ties go to the multiplier closest to 1). The other seeds then train with that learning rate only. The
/// test accuracy of a cell is the mean over seeds of the runs at the chosen learning rate, so test data never
/// influences a choice.
///
/// Each finished run is stored as a record (``SuiteRecordStore``), so an interrupted suite continues with the
/// next missing run, and the table can be rendered at any point from what has finished.
public struct BenchmarkSuite: Sendable {
    public var tasks: [String]
    /// Methods or method variants (``SuiteMethod`` specs such as `lora:r=4:lora_alpha=4`).
    public let methods: [String]
    public var seeds: [UInt64]
    public var learningRateMultipliers: [Float]
    public var budget: SuiteBudget
    public var store: SuiteRecordStore
    /// Model for image tasks.
    public var model = "dinov2-s14"

    public init(tasks: [String], methods: [String], seeds: [UInt64], learningRateMultipliers: [Float],
                budget: SuiteBudget, store: SuiteRecordStore) throws {
        guard !tasks.isEmpty, !methods.isEmpty, !seeds.isEmpty, !learningRateMultipliers.isEmpty else {
            throw TrainingError("the suite needs at least one task, method, seed and learning-rate multiplier")
        }
        for task in tasks { _ = try TaskRegistry.kind(of: task) }
        let variants = try methods.map { try SuiteMethod($0) }
        guard Set(methods).count == methods.count else { throw TrainingError("the suite's methods must not repeat") }
        guard learningRateMultipliers.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw TrainingError("learning-rate multipliers must be positive")
        }
        guard Set(seeds).count == seeds.count, Set(learningRateMultipliers).count == learningRateMultipliers.count else {
            throw TrainingError("seeds and learning-rate multipliers must not repeat")
        }
        guard budget.epochs > 0, budget.batchSize > 0, budget.resolution > 0 else {
            throw TrainingError("epochs, batch size and resolution must be positive")
        }
        self.tasks = tasks
        self.methods = methods
        self.seeds = seeds
        self.learningRateMultipliers = learningRateMultipliers
        self.budget = budget
        self.store = store
        self.variants = Dictionary(uniqueKeysWithValues: variants.map { ($0.spec, $0) })
    }

    /// The parsed `methods`, by spec.
    let variants: [String: SuiteMethod]

    /// The learning rate a run of `method` uses at `multiplier` of the method's default.
    public func learningRate(method: String, multiplier: Float) -> Float {
        (variants[method]?.defaultLearningRate ?? TrainingConfiguration.defaultLearningRate(method: method)) * multiplier
    }

    func record(_ task: String, _ method: String, _ multiplier: Float, _ seed: UInt64) throws -> SuiteRecord? {
        try store.record(task: task, method: method, budget: budget, multiplier: multiplier,
                         learningRate: learningRate(method: method, multiplier: multiplier), seed: seed)
    }

    /// The learning-rate multiplier chosen on validation for a cell, or nil while a first-seed run of the grid
    /// is missing.
    public func selectedMultiplier(task: String, method: String) throws -> Float? {
        var runs: [RunPoint] = []
        for multiplier in learningRateMultipliers {
            guard let record = try record(task, method, multiplier, seeds[0]) else { return nil }
            runs.append(RunPoint(record))
        }
        return runs.min(by: ReportCell.better)?.multiplier
    }

    /// The next run to do: first the learning-rate grid of every cell with the first seed (task by task), then
    /// the remaining seeds at the chosen learning rates; nil when the suite is complete.
    public func nextRun() throws -> SuiteRun? {
        for task in tasks {
            for method in methods {
                for multiplier in learningRateMultipliers where try record(task, method, multiplier, seeds[0]) == nil {
                    return SuiteRun(task: task, method: method, seed: seeds[0], learningRateMultiplier: multiplier)
                }
            }
        }
        for seed in seeds.dropFirst() {
            for task in tasks {
                for method in methods {
                    guard let multiplier = try selectedMultiplier(task: task, method: method) else { continue }
                    if try record(task, method, multiplier, seed) == nil {
                        return SuiteRun(task: task, method: method, seed: seed, learningRateMultiplier: multiplier)
                    }
                }
            }
        }
        return nil
    }

    /// The first-seed runs of the learning-rate grid that have no record yet, in the order `nextRun` takes them.
    public func pendingGridRuns() throws -> [SuiteRun] {
        var runs: [SuiteRun] = []
        for task in tasks {
            for method in methods {
                for multiplier in learningRateMultipliers where try record(task, method, multiplier, seeds[0]) == nil {
                    runs.append(SuiteRun(task: task, method: method, seed: seeds[0], learningRateMultiplier: multiplier))
                }
            }
        }
        return runs
    }

    /// The runs of the other seeds at each cell's chosen learning rate that have no record yet (none for a cell
    /// whose grid is incomplete).
    public func pendingSeedRuns() throws -> [SuiteRun] {
        var runs: [SuiteRun] = []
        for seed in seeds.dropFirst() {
            for task in tasks {
                for method in methods {
                    guard let multiplier = try selectedMultiplier(task: task, method: method) else { continue }
                    if try record(task, method, multiplier, seed) == nil {
                        runs.append(SuiteRun(task: task, method: method, seed: seed, learningRateMultiplier: multiplier))
                    }
                }
            }
        }
        return runs
    }

    /// Runs still to do (an upper bound before the learning rates are chosen: one per seed and cell after).
    public func remainingRunCount() throws -> Int {
        var count = 0
        for task in tasks {
            for method in methods {
                for multiplier in learningRateMultipliers where try record(task, method, multiplier, seeds[0]) == nil {
                    count += 1
                }
                let chosen = try selectedMultiplier(task: task, method: method)
                for seed in seeds.dropFirst() {
                    if let chosen, try record(task, method, chosen, seed) != nil { continue }
                    count += 1
                }
            }
        }
        return count
    }

    /// The training configuration of a run.
    public func configuration(for run: SuiteRun) throws -> TrainingConfiguration {
        var configuration = TrainingConfiguration()
        configuration.model = try TaskRegistry.kind(of: run.task) == .text ? "minilm-l6" : model
        configuration.task = run.task
        let variant = try variants[run.method] ?? SuiteMethod(run.method)
        configuration.method = variant.name
        configuration.methodConfig = try MethodRegistry.descriptor(named: variant.name).seeded(variant.config, with: run.seed)
        configuration.seed = run.seed
        configuration.epochs = budget.epochs
        configuration.batchSize = budget.batchSize
        configuration.resolution = budget.resolution
        configuration.maxEvaluationExamples = budget.maxEvaluationExamples
        configuration.learningRate = learningRate(method: run.method, multiplier: run.learningRateMultiplier)
        return configuration
    }

    /// Trains one run, stores its record and returns it.
    @discardableResult
    public func perform(_ run: SuiteRun, progress: @escaping (String) -> Void) throws -> SuiteRecord {
        let configuration = try configuration(for: run)
        let trainer = try TrainingSession.trainer(configuration, outputDirectory: nil, progress: progress)
        let result = try trainer.run(resume: false)
        let record = SuiteRecord(task: run.task, method: run.method, seed: run.seed,
                                 learningRateMultiplier: run.learningRateMultiplier,
                                 learningRate: configuration.resolvedLearningRate, budget: budget,
                                 bestValidationAccuracy: result.bestValidationAccuracy, bestEpoch: result.bestEpoch,
                                 testAccuracy: result.testAccuracy, trainableParameters: result.trainableParameters,
                                 secondsPerStep: result.secondsPerStep, totalSeconds: result.totalSeconds,
                                 finished: ISO8601DateFormatter().string(from: Date()))
        try store.save(record)
        return record
    }
}
