import Checkpoints
import Foundation
import Methods

/// One finished training run as the reports see it, whether it comes from a run directory (`result.json`) or
/// from a suite record.
public struct RunPoint: Sendable, Equatable {
    public var task: String
    /// The method, or the variant (`lora:r=4:lora_alpha=4`) when its options differ from the defaults.
    public var method: String
    /// The budget tag (`e10-b32-r112`), so runs of different budgets are never averaged together.
    public var budget: String
    public var learningRate: Float
    /// Multiplier of the method's default rate, when known (suite records).
    public var multiplier: Float?
    public var seed: UInt64
    public var validationAccuracy: Double
    public var testAccuracy: Double
    public var trainableParameters: Int

    public init(task: String, method: String, budget: String, learningRate: Float, multiplier: Float? = nil, seed: UInt64,
                validationAccuracy: Double, testAccuracy: Double, trainableParameters: Int) {
        self.task = task
        self.method = method
        self.budget = budget
        self.learningRate = learningRate
        self.multiplier = multiplier
        self.seed = seed
        self.validationAccuracy = validationAccuracy
        self.testAccuracy = testAccuracy
        self.trainableParameters = trainableParameters
    }

    public init(_ record: SuiteRecord) {
        self.init(task: record.task, method: record.method, budget: record.budget.tag, learningRate: record.learningRate,
                  multiplier: record.learningRateMultiplier, seed: record.seed,
                  validationAccuracy: record.bestValidationAccuracy, testAccuracy: record.testAccuracy,
                  trainableParameters: record.trainableParameters)
    }

    public init(_ result: TrainingResult) {
        let c = result.configuration
        // The suite's tag when the run has a resolution (image tasks); text runs leave it out.
        let budget = c.resolution.map {
            SuiteBudget(epochs: c.epochs, batchSize: c.batchSize, resolution: $0, maxEvaluationExamples: c.maxEvaluationExamples).tag
        } ?? "e\(c.epochs)-b\(c.batchSize)" + (c.maxEvaluationExamples.map { "-v\($0)" } ?? "")
        self.init(task: c.task, method: Self.label(method: c.method, config: c.methodConfig), budget: budget,
                  learningRate: c.resolvedLearningRate, seed: c.seed, validationAccuracy: result.bestValidationAccuracy,
                  testAccuracy: result.testAccuracy, trainableParameters: result.trainableParameters)
    }

    /// `method`, followed by `:key=value` for every option (other than the seed) that differs from its default,
    /// in key order: the suite's variant spelling.
    public static func label(method: String, config: ConfigObject) -> String {
        guard let descriptor = try? MethodRegistry.descriptor(named: method),
              let complete = try? descriptor.validated(config) else { return method }
        let changed = complete.keys.sorted().filter { key in
            key != descriptor.seedKey && complete[key] != descriptor.defaultConfig[key]
        }
        return ([method] + changed.compactMap { key in complete[key].map { "\(key)=\(Self.text($0))" } }).joined(separator: ":")
    }

    static func text(_ value: ConfigValue) -> String {
        switch value {
        case .string(let text): return text
        case .array(let list): return list.map(text).joined(separator: ",")
        case .real(let number): return String(format: "%g", number)
        default: return value.description
        }
    }

    /// The runs under `paths`: a run directory (with `result.json`), a suite record file, or a folder of suite
    /// records (searched recursively).
    ///
    /// - Throws: ``TrainingError`` naming the path that does not exist, a file that is neither a result nor a
    ///   record, or an accuracy outside [0, 1].
    public static func load(_ paths: [String]) throws -> [RunPoint] {
        var points: [RunPoint] = []
        for path in paths {
            let url = URL(fileURLWithPath: path)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw TrainingError("\(path): no such file or directory")
            }
            if !isDirectory.boolValue {
                points.append(try point(from: url))
            } else if RegularFile.exists(url.appendingPathComponent("result.json").path) {
                points.append(try point(from: url.appendingPathComponent("result.json")))
            } else {
                let files = (FileManager.default.enumerator(at: url, includingPropertiesForKeys: nil)?.allObjects as? [URL] ?? [])
                    .filter { $0.pathExtension == "json" }.sorted { $0.path < $1.path }
                guard !files.isEmpty else { throw TrainingError("\(path): holds no result.json and no suite records") }
                for file in files { points.append(try point(from: file)) }
            }
        }
        return points
    }

    static func point(from file: URL) throws -> RunPoint {
        let data: Data
        do { data = try Data(contentsOf: file) } catch { throw TrainingError("\(file.path): cannot be read (\(error))") }
        let point: RunPoint
        if let record = try? JSONDecoder().decode(SuiteRecord.self, from: data) {
            point = RunPoint(record)
        } else if let result = try? JSONDecoder().decode(TrainingResult.self, from: data) {
            point = RunPoint(result)
        } else {
            throw TrainingError("\(file.path): neither a run's result.json nor a suite record")
        }
        for (name, value) in [("test accuracy", point.testAccuracy), ("validation accuracy", point.validationAccuracy)]
            where !(value >= 0 && value <= 1) {
            throw TrainingError("\(file.path): the \(name) is \(value); an accuracy is in [0, 1]")
        }
        guard point.trainableParameters > 0 else {
            throw TrainingError("\(file.path): \(point.trainableParameters) trainable parameters; expected at least 1")
        }
        return point
    }
}

/// A method on a task at its chosen learning rate, over seeds: a point of the plot.
public struct ReportCell: Sendable, Equatable {
    public var task: String
    public var method: String
    public var learningRate: Float
    public var trainableParameters: Int
    /// Test accuracies, one per seed, in seed order.
    public var accuracies: [Double]

    public init(task: String, method: String, learningRate: Float, trainableParameters: Int, accuracies: [Double]) {
        self.task = task
        self.method = method
        self.learningRate = learningRate
        self.trainableParameters = trainableParameters
        self.accuracies = accuracies
    }

    /// The registered method of a variant (`lora` for `lora:r=4`).
    public var baseMethod: String { String(method.prefix { $0 != ":" }) }
    public var mean: Double { SuiteCell.mean(accuracies) }
    /// Sample standard deviation over seeds (0 with one seed).
    public var spread: Double { SuiteCell.spread(accuracies) }

    /// The cells of `points`, one per task and method, as the suite chooses them: the learning rate whose run
    /// with the smallest seed has the best validation accuracy (ties: the multiplier closest to 1, else the
    /// lower rate), then every seed's test accuracy at that rate. Cells come in the registries' order of tasks and
    /// methods (others after them, in order of appearance).
    ///
    /// - Throws: ``TrainingError`` when the points hold several budgets (they must not be averaged together).
    public static func cells(_ points: [RunPoint]) throws -> [ReportCell] {
        let budgets = Set(points.map(\.budget))
        guard budgets.count <= 1 else {
            throw TrainingError("the runs have \(budgets.count) budgets (\(budgets.sorted().joined(separator: ", "))); choose one with --budget")
        }
        var order: [String] = [], groups: [String: [RunPoint]] = [:]
        for point in points {
            let key = point.task + "\u{0}" + point.method
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(point)
        }
        let tasks = ranked(orderedUnique(points.map(\.task)), by: TaskRegistry.names) { $0 }
        let methods = ranked(orderedUnique(points.map(\.method)), by: MethodRegistry.names) { String($0.prefix { $0 != ":" }) }
        var cells: [ReportCell] = []
        for key in order {
            let runs = groups[key] ?? []
            guard let first = runs.first, let seed = runs.map(\.seed).min() else { continue }
            let candidates = runs.filter { $0.seed == seed }
            guard let chosen = candidates.min(by: { better($0, than: $1) }) else { continue }
            let atRate = runs.filter { $0.learningRate == chosen.learningRate }.sorted { $0.seed < $1.seed }
            cells.append(ReportCell(task: first.task, method: first.method, learningRate: chosen.learningRate,
                                    trainableParameters: chosen.trainableParameters, accuracies: atRate.map(\.testAccuracy)))
        }
        return cells.sorted {
            (tasks.firstIndex(of: $0.task) ?? 0, methods.firstIndex(of: $0.method) ?? 0)
                < (tasks.firstIndex(of: $1.task) ?? 0, methods.firstIndex(of: $1.method) ?? 0)
        }
    }

    /// Whether run `a` is preferred to run `b` when choosing a learning rate (the suite's rule too): the better
    /// validation accuracy, then the multiplier closest to 1, then the lower rate.
    static func better(_ a: RunPoint, than b: RunPoint) -> Bool {
        if a.validationAccuracy != b.validationAccuracy { return a.validationAccuracy > b.validationAccuracy }
        if let ma = a.multiplier, let mb = b.multiplier, abs(log(Double(ma))) != abs(log(Double(mb))) {
            return abs(log(Double(ma))) < abs(log(Double(mb)))
        }
        return a.learningRate < b.learningRate
    }

    /// `values` in the order their keys have in `order` (unknown keys last), keeping their order otherwise.
    static func ranked(_ values: [String], by order: [String], key: (String) -> String) -> [String] {
        values.enumerated().sorted {
            (order.firstIndex(of: key($0.element)) ?? order.count, $0.offset) < (order.firstIndex(of: key($1.element)) ?? order.count, $1.offset)
        }.map(\.element)
    }

    static func orderedUnique(_ values: [String]) -> [String] {
        var seen = Set<String>()
        return values.filter { seen.insert($0).inserted }
    }
}
