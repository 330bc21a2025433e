import Checkpoints
import Collectives
import Engine
import Foundation
import Layers
import Methods

/// Trains a classifier's trainable parameters on one task with AdamW, a cosine schedule and label smoothing;
/// evaluates on validation, keeps the best-on-validation weights, reports test accuracy once at the end.
///
/// With an output directory it writes, atomically: `checkpoint.safetensors` after every epoch (everything needed
/// to resume), `log.jsonl` (one line per epoch), `best.safetensors` (the best trainable weights) and `result.json`.
public final class Trainer {
    public let configuration: TrainingConfiguration
    public let model: any Classifier
    public let train: BatchSource
    public let validation: BatchSource
    public let test: BatchSource
    public let outputDirectory: URL?
    /// Stops (as if killed) once this many epochs are complete and checkpointed; for resume tests.
    public var stopAfterEpochs: Int?
    /// Receives progress lines (default: standard error).
    public var log: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    /// Called after each backward pass with the global step number (0-based), before the gradients are checked;
    /// tests use it to inject numerical faults (e.g. a NaN in one gradient).
    public var faultInjector: ((_ step: Int, _ model: any Classifier) -> Void)?
    /// The ranks training together (set before `run`; default: this process alone). With more than one, each
    /// rank runs its shard of every batch, gradients are summed over the ranks once per step, every rank makes
    /// the same update, validation and test are split over the ranks, and only rank 0 reads and writes the
    /// output directory and logs.
    public var group: ProcessGroup = .single
    /// The task's class names, recorded in the adapter's config (so `peft predict` prints them).
    public var classNames: [String]?
    /// Seconds spent in the gradient allreduce so far, and the bytes this rank sent into it.
    public internal(set) var reductionSeconds = 0.0
    public internal(set) var reductionBytes = 0
    /// Steps whose gradients went through the allreduce.
    public internal(set) var reducedSteps = 0
    var reductionBuffer: [Float] = []
    /// Multiplier on the scheduled learning rate; halved by every step skipped for a non-finite value.
    public internal(set) var learningRateFactor: Float = 1
    /// Steps skipped so far (with `onNonFinite == .skip`), and how many of the latest ones were in a row.
    public internal(set) var skippedSteps = 0
    var consecutiveSkips = 0

    var optimizer: AdamW
    let schedule: CosineSchedule
    /// The method, when it changes what trains part-way (TTC, Pear), and whether it has.
    /// The method of the run (built once from the configuration).
    let method: any PEFTMethod
    let stagedMethod: (any StagedMethod)?
    var advancedStage = false
    let stepsPerEpoch: Int
    var bestParameters: [String: Tensor] = [:]
    var history: [EpochRecord] = []
    var bestEpoch = -1
    var bestValidationAccuracy = -1.0
    var completedEpochs = 0
    /// Backbone features computed once, used when only the head trains.
    var trainFeatures: FeatureCache?
    var evaluationFeatures: [ObjectIdentifier: FeatureCache] = [:]
    /// True when only the classification head trains, so backbone features can be cached.
    public var onlyHeadTrains: Bool { model.trainableParameters.allSatisfy { $0.0.hasPrefix("classifier.") } }

    public init(configuration: TrainingConfiguration, model: any Classifier, train: BatchSource,
                validation: BatchSource, test: BatchSource, outputDirectory: URL?) throws {
        guard configuration.batchSize > 0 else {
            throw TrainingError("batch size must be at least 1, got \(configuration.batchSize)")
        }
        try Self.validate(configuration)
        guard train.count >= configuration.batchSize else {
            throw TrainingError("the training split has \(train.count) examples, fewer than one batch of \(configuration.batchSize)")
        }
        let method = try configuration.makeMethod()
        var configuration = configuration
        configuration.methodConfig = method.config.values  // complete, so that checkpoints compare like with like
        self.configuration = configuration
        self.method = method
        self.model = model
        self.train = train
        self.validation = validation
        self.test = test
        self.outputDirectory = outputDirectory
        var steps = train.count / configuration.batchSize
        if let limit = configuration.maxStepsPerEpoch { steps = min(steps, limit) }
        stepsPerEpoch = steps
        optimizer = Self.makeOptimizer(model, configuration)
        stagedMethod = method as? any StagedMethod
        schedule = CosineSchedule(baseRate: configuration.resolvedLearningRate,
                                  warmupSteps: Int((configuration.warmupEpochs * Float(steps)).rounded()),
                                  totalSteps: steps * configuration.epochs)
    }

    /// The most epochs a run may ask for (so that step counts and ETAs cannot overflow).
    public static let maximumEpochs = 100_000
    /// The largest batch size accepted.
    public static let maximumBatchSize = 4096

    /// Refuses settings the loop cannot run with, so they fail here with a message instead of deep inside it.
    public static func validate(_ configuration: TrainingConfiguration) throws {
        func check(_ ok: Bool, _ message: @autoclosure () -> String) throws {
            if !ok { throw TrainingError(message()) }
        }
        let rate = configuration.resolvedLearningRate, headRate = configuration.resolvedHeadLearningRate
        try check(rate.isFinite && rate > 0, "learning rate must be a positive number, got \(rate)")
        try check(headRate.isFinite && headRate > 0, "head learning rate must be a positive number, got \(headRate)")
        try check(configuration.weightDecay.isFinite && configuration.weightDecay >= 0,
                  "weight decay must be zero or positive, got \(configuration.weightDecay)")
        try check(configuration.labelSmoothing >= 0 && configuration.labelSmoothing < 1,
                  "label smoothing must be in [0, 1), got \(configuration.labelSmoothing)")
        try check(configuration.clipNorm.isFinite && configuration.clipNorm >= 0,
                  "the gradient clip norm must be zero (off) or positive, got \(configuration.clipNorm)")
        try check(configuration.warmupEpochs.isFinite && configuration.warmupEpochs >= 0,
                  "warm-up epochs must be zero or positive, got \(configuration.warmupEpochs)")
        try check(configuration.epochs >= 1 && configuration.epochs <= maximumEpochs,
                  "epochs must be in 1...\(maximumEpochs), got \(configuration.epochs)")
        try check(configuration.warmupEpochs <= Float(configuration.epochs),
                  "warm-up epochs (\(configuration.warmupEpochs)) must not exceed the epochs (\(configuration.epochs))")
        try check(configuration.batchSize <= maximumBatchSize,
                  "batch size must be in 1...\(maximumBatchSize), got \(configuration.batchSize)")
        if let limit = configuration.maxStepsPerEpoch {
            try check(limit >= 1, "max steps per epoch must be at least 1, got \(limit)")
        }
        try check(configuration.evaluateEvery > 0, "evaluate-every must be at least 1, got \(configuration.evaluateEvery)")
        try check(configuration.maxConsecutiveSkips >= 0,
                  "the number of consecutive skipped steps allowed must be zero or positive, got \(configuration.maxConsecutiveSkips)")
        if let limit = configuration.maxEvaluationExamples {
            try check(limit > 0, "max evaluation examples must be at least 1, got \(limit)")
        }
    }

    var checkpointURL: URL? { files?.appendingPathComponent("checkpoint.safetensors") }
    /// The output directory on the rank that writes it (rank 0); nil on the others.
    var files: URL? { group.isLeader ? outputDirectory : nil }

    static func makeOptimizer(_ model: any Classifier, _ configuration: TrainingConfiguration) -> AdamW {
        let headRate = configuration.resolvedHeadLearningRate, baseRate = configuration.resolvedLearningRate
        return AdamW(parameters: model.trainableParameters, weightDecay: configuration.weightDecay,
                     learningRateScale: { $0.hasPrefix("classifier.") ? headRate / baseRate : 1 })
    }

    /// `count` batches of training examples (a fixed draw from the seed), for methods that score on data.
    public func calibrationBatches(_ count: Int) -> [(ClassifierInput, [Int])] {
        TrainingSession.calibrationBatches(count, from: train, configuration: configuration)
    }

    /// Runs a staged method's switch (TTC's channel selection, Pear's pruning), then trains the new set with a
    /// fresh optimiser; the best-on-validation tracking restarts, since the parameters changed.
    func advanceStage(_ method: any StagedMethod) throws {
        log("\(method.name): scoring on \(method.scoringBatches) batches and switching stage")
        try method.advance(model, calibration: calibrationBatches(method.scoringBatches))
        try synchronizeStage()
        model.zeroGrad()
        advancedStage = true
        optimizer = Self.makeOptimizer(model, configuration)
        bestParameters = [:]
        bestValidationAccuracy = -1
        bestEpoch = -1
        log("stage 2: " + model.trainableSummary)
        if let summary = method.stageSummary(model) { log(summary) }
    }

    /// The files whose presence means a directory already holds a run (finished or interrupted).
    static let runFiles = ["checkpoint.safetensors", "result.json", "best.safetensors", "log.jsonl", "adapter"]

    /// Runs (or, with `resume`, continues) training and returns the result with the test accuracy.
    ///
    /// The output directory is locked for the whole run (a second process is refused, naming the first). A new
    /// run (no `resume`) refuses a directory that already holds a run unless `overwrite` is set; then only the
    /// old `result.json` is removed up front, so the folder is never taken for a finished run while it trains,
    /// and the other files are replaced one by one as the new run writes them. `resume` needs a checkpoint.
    public func run(resume: Bool = false, overwrite: Bool = false) throws -> TrainingResult {
        let started = Date()
        guard configuration.batchSize >= group.size else {
            throw TrainingError("batch size \(configuration.batchSize) is smaller than the \(group.size) ranks; every rank needs at least one example per step")
        }
        let lock = try files.map { try RunDirectoryLock(directory: $0) }
        defer { lock?.release() }
        removeStaleTemporaryFiles()
        if let directory = files, let url = checkpointURL {
            if resume {
                guard RegularFile.exists(url.path) else {
                    throw TrainingError("\(directory.path): no checkpoint.safetensors to resume from; drop --resume to start a new run there")
                }
                try restoreCheckpoint(from: url)
                log("resumed from \(url.path) after epoch \(completedEpochs)")
            } else {
                let existing = Self.runFiles.filter { RegularFile.exists(directory.appendingPathComponent($0).path) }
                if !existing.isEmpty {
                    guard overwrite else {
                        throw TrainingError("\(directory.path) already holds a run (\(existing.joined(separator: ", "))); use --resume to continue it, --overwrite to replace it, or another --out")
                    }
                    try? FileManager.default.removeItem(at: directory.appendingPathComponent("result.json"))
                    log("replacing the run in \(directory.path)")
                }
            }
        }
        try synchronizeWithLeader()
        log(model.trainableSummary)
        var stepSeconds: [Double] = []
        for epoch in completedEpochs..<configuration.epochs {
            if let staged = stagedMethod, !advancedStage, epoch >= staged.switchEpoch(of: configuration.epochs) {
                try advanceStage(staged)
            }
            let record = try trainEpoch(epoch, started: started, stepSeconds: &stepSeconds)
            history.append(record)
            completedEpochs = epoch + 1
            try saveCheckpoint()
            try writeLog()
            if let stop = stopAfterEpochs, completedEpochs >= stop, completedEpochs < configuration.epochs {
                throw TrainingError("stopped after epoch \(completedEpochs) as requested")
            }
        }
        // Best-on-validation weights, then the test set once.
        restoreBest()
        let testAccuracy = try evaluateSplit(test, limit: configuration.maxEvaluationExamples)
        let medianStep = stepSeconds.isEmpty ? 0 : stepSeconds.sorted()[stepSeconds.count / 2]
        let result = TrainingResult(
            configuration: configuration, trainableParameters: model.trainableParameterCount,
            totalParameters: model.parameterCount, bestEpoch: bestEpoch + 1,
            bestValidationAccuracy: bestValidationAccuracy, testAccuracy: testAccuracy,
            secondsPerStep: medianStep,
            examplesPerSecond: medianStep > 0 ? Double(configuration.batchSize) / medianStep : 0,
            totalSeconds: Date().timeIntervalSince(started), history: history)
        if let directory = files {
            // result.json last: it marks the run as finished, so it must never exist next to a partial set.
            try SafeTensors.write(bestParameters, metadata: ["format": "pt"],
                                  to: directory.appendingPathComponent("best.safetensors"))
            try AdapterFiles.save(model, method: method,
                                  baseModel: configuration.model,
                                  classNames: classNames?.count == model.classCount ? classNames : nil,
                                  resolution: trainedResolution, naming: configuration.adapterNaming,
                                  to: directory.appendingPathComponent("adapter"))
            try writeAtomically(try jsonData(result, pretty: true), to: directory.appendingPathComponent("result.json"))
        }
        log(String(format: "test accuracy %.2f%% (best validation %.2f%% at epoch %d)", 100 * testAccuracy,
                   100 * bestValidationAccuracy, bestEpoch + 1))
        return result
    }

    /// The image side the model trains at (nil for text models), recorded in the adapter config.
    var trainedResolution: Int? {
        guard let image = model as? ImageClassifier else { return nil }
        return configuration.resolution ?? image.vision.configuration.defaultResolution
    }

    /// Deletes temporary files and staging directories that an atomic write of a killed run left in the output
    /// directory or its `adapter/` folder (`.<name>.tmp-<pid>-<random>`, see `writeFileAtomically` and
    /// `writeDirectoryAtomically`); the files they were meant to replace are intact. Runs under the run lock, so
    /// no other process is writing there.
    func removeStaleTemporaryFiles() {
        guard let directory = files else { return }
        let own = ".tmp-\(getpid())-"
        for folder in [directory, directory.appendingPathComponent("adapter")] {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { continue }
            for name in names where name.hasPrefix(".") && name.contains(".tmp-") && !name.contains(own) {
                try? FileManager.default.removeItem(at: folder.appendingPathComponent(name))
            }
        }
    }

    /// Shuffled order of the training examples for `epoch` (a pure function of the seed and epoch).
    func order(epoch: Int) -> [Int] {
        var generator = RandomGenerator(seed: configuration.seed &* 0x9E37_79B9 &+ UInt64(epoch) &* 0x1000_0001)
        var indices = Array(0..<train.count)
        indices.shuffle(using: &generator)
        return indices
    }

    /// The examples of a step this rank runs: its shard of the global batch (all of it in a single process).
    func stepIndices(step: Int, order: [Int]) -> [Int] {
        let global = order[(step * configuration.batchSize)..<((step + 1) * configuration.batchSize)]
        let own = shard(of: configuration.batchSize)
        return Array(global.dropFirst(own.lowerBound).prefix(own.count))
    }

    /// This rank's share of a step's batch: prepared images or tokens, or (when the head alone trains) cached
    /// features. The flips are drawn for the whole global batch, so every rank count sees the same augmentation.
    func batchInput(epoch: Int, step: Int, order: [Int]) -> ClassifierInput {
        var generator = RandomGenerator(seed: configuration.seed ^ UInt64(epoch * 100_003 + step) &* 0x2545_F491_4F6C_DD1D)
        let allFlips = train.flips(count: configuration.batchSize, augment: true, generator: &generator)
        let own = shard(of: configuration.batchSize)
        let indices = stepIndices(step: step, order: order), flips = Array(allFlips[own])
        if let cache = trainFeatures { return .features(cache.features(indices, flips: flips)) }
        return train.batch(indices, flips: flips)
    }

    /// Logits for an input, going through the head alone for cached features.
    func logits(_ input: ClassifierInput) -> Tensor {
        if case .features(let features) = input { return model.head(features) }
        return model.logits(input)
    }

    func trainEpoch(_ epoch: Int, started: Date, stepSeconds: inout [Double]) throws -> EpochRecord {
        let epochStart = Date()
        let order = order(epoch: epoch)
        if onlyHeadTrains && trainFeatures == nil {
            log("only the head trains: computing backbone features once for \(train.count) training examples")
            trainFeatures = try FeatureCache.shared(model: model, source: train, includeFlipped: train.flipsImages, group: group)
        }
        let prefetcher = Prefetcher()
        prefetcher.start { [self] in batchInput(epoch: epoch, step: 0, order: order) }
        var lossSum = 0.0, correct = 0, seen = 0
        var rate: Float = 0
        for step in 0..<stepsPerEpoch {
            let stepStart = Date()
            let input = prefetcher.take()
            if step + 1 < stepsPerEpoch {
                prefetcher.start { [self] in batchInput(epoch: epoch, step: step + 1, order: order) }
            }
            let labels = stepIndices(step: step, order: order).map { train.labels[$0] }
            let globalStep = epoch * stepsPerEpoch + step
            let stepSeed = configuration.seed &+ UInt64(globalStep) &* 0x5851_F42D
            let forward: (Tensor, Tensor) = ModelMode.training(stepSeed: stepSeed) {
                let output = self.logits(input)
                return (output, crossEntropy(output, labels: labels, smoothing: configuration.labelSmoothing))
            }
            let (logits, loss) = forward
            let stepRate = schedule.rate(at: globalStep) * learningRateFactor
            let position = "at epoch \(epoch + 1), step \(step + 1)"
            var fault: String?
            let localLoss = loss.item
            var stepLoss = Double(localLoss)
            var stepCorrect = zip(argmaxRows(logits), labels).filter { $0 == $1 }.count
            // Each rank's gradient is its share of the global batch's mean.
            let share = Float(labels.count) / Float(configuration.batchSize)
            if localLoss.isFinite {
                (group.isDistributed ? loss * share : loss).backward()
                faultInjector?(globalStep, model)
            }
            if group.isDistributed {
                let sums = try reduceGradients(statistics: [localLoss.isFinite ? localLoss * share : 0, Float(stepCorrect),
                                                            localLoss.isFinite ? 0 : 1], step: globalStep)
                stepLoss = Double(sums[0])
                stepCorrect = Int(sums[1].rounded())
                if sums[2] > 0 {
                    fault = "the loss became non-finite on \(Int(sums[2].rounded())) of the \(group.size) ranks \(position)"
                }
            } else if !localLoss.isFinite {
                fault = "the loss became \(localLoss) \(position)"
            }
            if fault == nil {
                // Applies the step unless a gradient or the update is non-finite.
                switch optimizer.updateIfFinite(learningRate: stepRate, clipNorm: configuration.clipNorm) {
                case .nonFiniteGradient(let bad)?:
                    fault = "the gradient of '\(bad)' holds NaN or infinity \(position)"
                case .nonFiniteUpdate(let bad)?:
                    fault = "the update of '\(bad)' would make it (or its AdamW moments) NaN or infinite \(position) (learning rate \(stepRate))"
                case nil:
                    break
                }
            }
            if let fault {
                model.zeroGrad()
                optimizer.discardGradients()
                try handleNonFinite(fault, rate: stepRate)
                continue
            }
            consecutiveSkips = 0
            rate = stepRate
            lossSum += stepLoss * Double(configuration.batchSize)
            correct += stepCorrect
            seen += configuration.batchSize
            let seconds = Date().timeIntervalSince(stepStart)
            stepSeconds.append(seconds)
            if step % 5 == 4 || step + 1 == stepsPerEpoch {
                let done = globalStep + 1, total = stepsPerEpoch * configuration.epochs
                let recent = stepSeconds.suffix(10)
                let perStep = recent.reduce(0, +) / Double(recent.count)
                log(String(format: "epoch %d/%d step %d/%d loss %.4f | %.1f img/s | ETA %@", epoch + 1, configuration.epochs,
                           step + 1, stepsPerEpoch, lossSum / Double(seen), Double(configuration.batchSize) / perStep,
                           formatDuration(perStep * Double(total - done))))
            }
        }
        let trainSeconds = Date().timeIntervalSince(epochStart)
        var validationAccuracy: Double?
        if (epoch + 1) % configuration.evaluateEvery == 0 || epoch + 1 == configuration.epochs {
            let accuracy = try evaluateSplit(validation, limit: configuration.maxEvaluationExamples)
            validationAccuracy = accuracy
            if accuracy > bestValidationAccuracy {
                bestValidationAccuracy = accuracy
                bestEpoch = epoch
                bestParameters = Dictionary(uniqueKeysWithValues: model.trainableParameters.map { ($0.0, $0.1.copy()) })
            }
        }
        let record = EpochRecord(
            epoch: epoch + 1, step: (epoch + 1) * stepsPerEpoch, trainLoss: lossSum / Double(max(seen, 1)),
            trainAccuracy: Double(correct) / Double(max(seen, 1)), validationAccuracy: validationAccuracy,
            learningRate: rate, seconds: Date().timeIntervalSince(epochStart),
            imagesPerSecond: Double(seen) / trainSeconds, secondsPerStep: trainSeconds / Double(stepsPerEpoch))
        log(String(format: "epoch %d/%d: train loss %.4f acc %.1f%% | val %@ | %.1f img/s | %.0f s", epoch + 1,
                   configuration.epochs, record.trainLoss, 100 * record.trainAccuracy,
                   validationAccuracy.map { String(format: "%.1f%%%@", 100 * $0, bestEpoch == epoch ? " (best)" : "") } ?? "-",
                   record.imagesPerSecond, record.seconds))
        return record
    }

    /// A step hit a NaN or infinity (nothing of it was applied): stops the run, or skips the step and halves the
    /// learning-rate multiplier, giving up after `maxConsecutiveSkips` skips in a row.
    func handleNonFinite(_ fault: String, rate: Float) throws {
        switch configuration.onNonFinite {
        case .stop:
            throw TrainingError("\(fault); nothing of this step was applied and the saved checkpoint is from before it. Lower the learning rate (now \(rate)) or use --on-nonfinite skip")
        case .skip:
            skippedSteps += 1
            consecutiveSkips += 1
            guard consecutiveSkips <= configuration.maxConsecutiveSkips else {
                throw TrainingError("\(fault); gave up after \(configuration.maxConsecutiveSkips) consecutive skipped steps (learning-rate multiplier \(learningRateFactor)); no skipped step reached the weights or the saved checkpoint")
            }
            learningRateFactor *= 0.5
            log("skipped a step: \(fault); learning-rate multiplier now \(learningRateFactor) (\(consecutiveSkips) in a row, \(skippedSteps) in all)")
        }
    }

    /// Accuracy on (the first `limit` examples of) a split, split over the ranks when there are several.
    func evaluateSplit(_ source: BatchSource, limit: Int?) throws -> Double {
        guard group.isDistributed else { return evaluate(source, limit: limit) }
        let count = min(source.count, limit ?? source.count)
        if onlyHeadTrains {
            if evaluationFeatures[ObjectIdentifier(source)] == nil {
                evaluationFeatures[ObjectIdentifier(source)] = try FeatureCache.shared(model: model, source: source, limit: count,
                                                                                    includeFlipped: false, group: group)
            }
            return evaluate(source, limit: limit)  // the head on the cached features
        }
        return Double(try distributedCorrect(source, count: count, batchSize: 64)) / Double(max(count, 1))
    }

    /// Accuracy on (the first `limit` examples of) a split, in evaluation mode, in this process alone.
    public func evaluate(_ source: BatchSource, limit: Int? = nil, batchSize: Int = 64) -> Double {
        let count = min(source.count, limit ?? source.count)
        if onlyHeadTrains {
            let cache = evaluationFeatures[ObjectIdentifier(source)]
                ?? FeatureCache(model: model, source: source, limit: count, includeFlipped: false)
            evaluationFeatures[ObjectIdentifier(source)] = cache
            let logits = Autograd.withoutGrad { model.head(cache.plain) }
            return Double(zip(argmaxRows(logits), source.labels.prefix(count)).filter { $0 == $1 }.count) / Double(max(count, 1))
        }
        return Double(correctCount(source, count: count, batchSize: batchSize) { _ in true }) / Double(max(count, 1))
    }

    /// Puts the best-on-validation weights back into the model.
    func restoreBest() {
        let current = Dictionary(uniqueKeysWithValues: model.trainableParameters)
        for (name, value) in bestParameters { current[name]?.assign(value) }
    }

    /// Rewrites `log.jsonl` from the run's history (one line per completed epoch), atomically: the log always
    /// matches the checkpoint, also after a resume, and never mixes in lines of another run.
    func writeLog() throws {
        guard let directory = files else { return }
        var data = Data()
        for record in history {
            data.append(try jsonData(record))
            data.append(0x0A)
        }
        try writeAtomically(data, to: directory.appendingPathComponent("log.jsonl"))
    }
}

/// Index of the largest value in each row of [B, C].
public func argmaxRows(_ logits: Tensor) -> [Int] {
    let rows = logits.shape[0], columns = logits.shape[1]
    return (0..<rows).map { r in
        let row = logits.data + r * columns
        var best = 0
        for c in 1..<columns where row[c] > row[best] { best = c }
        return best
    }
}

/// "1h02m", "4m10s", "12s".
func formatDuration(_ seconds: Double) -> String {
    let total = Int(seconds.rounded())
    if total >= 3600 { return String(format: "%dh%02dm", total / 3600, (total % 3600) / 60) }
    if total >= 60 { return String(format: "%dm%02ds", total / 60, total % 60) }
    return "\(total)s"
}
