import Foundation

/// The shared budget of a benchmark suite: every method gets the same epochs, batch, resolution and seeds.
public struct SuiteBudget: Codable, Sendable, Equatable, Hashable {
    public var epochs: Int
    public var batchSize: Int
    public var resolution: Int
    /// Validation/test examples evaluated (nil: the whole split).
    public var maxEvaluationExamples: Int?

    public init(epochs: Int = 10, batchSize: Int = 32, resolution: Int = 112, maxEvaluationExamples: Int? = nil) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.resolution = resolution
        self.maxEvaluationExamples = maxEvaluationExamples
    }

    /// A short tag used in record file names, so results from different budgets never mix.
    public var tag: String {
        "e\(epochs)-b\(batchSize)-r\(resolution)" + (maxEvaluationExamples.map { "-v\($0)" } ?? "")
    }
}

/// The outcome of one training run of the suite (one method, task, learning rate and seed).
public struct SuiteRecord: Codable, Sendable, Equatable {
    public var task: String
    public var method: String
    public var seed: UInt64
    /// Multiplier of the method's default learning rate this run used.
    public var learningRateMultiplier: Float
    public var learningRate: Float
    public var budget: SuiteBudget
    public var bestValidationAccuracy: Double
    public var bestEpoch: Int
    public var testAccuracy: Double
    public var trainableParameters: Int
    public var secondsPerStep: Double
    public var totalSeconds: Double
    /// When the run finished (ISO 8601).
    public var finished: String

    public init(task: String, method: String, seed: UInt64, learningRateMultiplier: Float, learningRate: Float,
                budget: SuiteBudget, bestValidationAccuracy: Double, bestEpoch: Int, testAccuracy: Double,
                trainableParameters: Int, secondsPerStep: Double, totalSeconds: Double, finished: String) {
        self.task = task
        self.method = method
        self.seed = seed
        self.learningRateMultiplier = learningRateMultiplier
        self.learningRate = learningRate
        self.budget = budget
        self.bestValidationAccuracy = bestValidationAccuracy
        self.bestEpoch = bestEpoch
        self.testAccuracy = testAccuracy
        self.trainableParameters = trainableParameters
        self.secondsPerStep = secondsPerStep
        self.totalSeconds = totalSeconds
        self.finished = finished
    }

    /// The record's file name inside `<results>/<task>/<method>/`: the budget, the learning rate itself (so
    /// a method whose default rate changes never reuses a record of the old rate) and the seed.
    public static func fileName(budget: SuiteBudget, learningRate: Float, seed: UInt64) -> String {
        "\(budget.tag)-rate\(String(format: "%g", Double(learningRate)))-s\(seed).json"
    }

    /// The name records had when they were named by the multiplier of the default rate; still read when the
    /// rate they hold is the one asked for.
    static func legacyFileName(budget: SuiteBudget, multiplier: Float, seed: UInt64) -> String {
        "\(budget.tag)-lr\(multiplierTag(multiplier))-s\(seed).json"
    }

    static func multiplierTag(_ multiplier: Float) -> String {
        String(format: "%g", Double(multiplier)).replacingOccurrences(of: ".", with: "p")
    }

    /// Whether two learning rates are the same up to float rounding of the multiplication that made them.
    static func sameRate(_ a: Float, _ b: Float) -> Bool { abs(a - b) <= 1e-4 * max(abs(a), abs(b)) }
}

/// Reads and writes suite records as one small JSON file per run, so an interrupted suite continues where it
/// stopped and results can be committed next to the table they produce.
public struct SuiteRecordStore: Sendable {
    public let directory: URL

    public init(directory: URL) { self.directory = directory }

    /// Where the record of that run is (or will be) stored.
    public func url(task: String, method: String, budget: SuiteBudget, learningRate: Float, seed: UInt64) -> URL {
        folder(task: task, method: method).appendingPathComponent(SuiteRecord.fileName(budget: budget, learningRate: learningRate, seed: seed))
    }

    func folder(task: String, method: String) -> URL {
        directory.appendingPathComponent(task).appendingPathComponent(SuiteMethod.folderName(method))
    }

    /// The stored record of that run, or nil if it has not run. A record under the older multiplier-based name
    /// counts only when it holds `learningRate`.
    ///
    /// - Throws: ``TrainingError`` naming the file when it exists but is not a valid record.
    public func record(task: String, method: String, budget: SuiteBudget, multiplier: Float, learningRate: Float,
                       seed: UInt64) throws -> SuiteRecord? {
        if let record = try read(url(task: task, method: method, budget: budget, learningRate: learningRate, seed: seed)) {
            return record
        }
        let legacy = folder(task: task, method: method)
            .appendingPathComponent(SuiteRecord.legacyFileName(budget: budget, multiplier: multiplier, seed: seed))
        guard let record = try read(legacy), SuiteRecord.sameRate(record.learningRate, learningRate) else { return nil }
        return record
    }

    func read(_ file: URL) throws -> SuiteRecord? {
        guard FileManager.default.fileExists(atPath: file.path) else { return nil }
        do {
            return try JSONDecoder().decode(SuiteRecord.self, from: Data(contentsOf: file))
        } catch {
            throw TrainingError("\(file.path): not a valid suite record (\(error)); delete it to rerun that cell")
        }
    }

    /// Saves `record` atomically.
    public func save(_ record: SuiteRecord) throws {
        let file = url(task: record.task, method: record.method, budget: record.budget,
                       learningRate: record.learningRate, seed: record.seed)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try writeAtomically(try jsonData(record, pretty: true), to: file)
    }
}
