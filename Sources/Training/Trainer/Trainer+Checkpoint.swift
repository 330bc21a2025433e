import Checkpoints
import Engine
import Foundation

/// What, besides tensors, a checkpoint holds (stored as JSON in the safetensors metadata).
struct CheckpointState: Codable {
    var configuration: TrainingConfiguration
    var completedEpochs: Int
    var optimizerStep: Int
    var bestEpoch: Int
    var bestValidationAccuracy: Double
    var history: [EpochRecord]
    /// Learning-rate multiplier and skip counters of `--on-nonfinite skip` (absent in older checkpoints: 1, 0, 0).
    var learningRateFactor: Float?
    var skippedSteps: Int?
    var consecutiveSkips: Int?

    /// The state stored in a checkpoint file's metadata.
    static func read(from file: SafeTensorsFile, path: String) throws -> CheckpointState {
        guard let text = file.metadata["peft_training_state"] else {
            throw TrainingError("\(path): not a training checkpoint (no 'peft_training_state' in its metadata)")
        }
        let state: CheckpointState
        do { state = try JSONDecoder().decode(CheckpointState.self, from: Data(text.utf8)) } catch {
            throw TrainingError("\(path): the training state in the metadata is not readable: \(describeDecodingError(error))")
        }
        try state.validate(path: path)
        return state
    }

    /// Refuses counters that no run can have written (a damaged or edited checkpoint), before any is used.
    func validate(path: String) throws {
        func check(_ ok: Bool, _ what: @autoclosure () -> String) throws {
            if !ok { throw TrainingError("\(path): the training state is inconsistent: \(what())") }
        }
        try check(completedEpochs >= 0 && completedEpochs <= Trainer.maximumEpochs,
                  "completedEpochs is \(completedEpochs) (0...\(Trainer.maximumEpochs))")
        try check(completedEpochs <= configuration.epochs,
                  "completedEpochs is \(completedEpochs), more than the run's \(configuration.epochs) epochs")
        try check(history.count == completedEpochs, "\(history.count) epoch records for \(completedEpochs) completed epochs")
        try check(optimizerStep >= 0, "optimizerStep is \(optimizerStep)")
        try check(bestEpoch >= -1 && bestEpoch < max(completedEpochs, 1),
                  "bestEpoch is \(bestEpoch) with \(completedEpochs) completed epochs")
        try check(bestValidationAccuracy == -1 || (bestValidationAccuracy >= 0 && bestValidationAccuracy <= 1),
                  "bestValidationAccuracy is \(bestValidationAccuracy) (an accuracy in [0, 1], or -1 before the first evaluation)")
        if let factor = learningRateFactor {
            try check(factor.isFinite && factor > 0 && factor <= 1, "learningRateFactor is \(factor) (in (0, 1])")
        }
        try check((skippedSteps ?? 0) >= 0 && (consecutiveSkips ?? 0) >= 0, "negative skip counts")
    }
}

extension Trainer {
    /// Writes everything needed to resume (trainable weights, best weights, optimiser moments, counters) to
    /// `checkpoint.safetensors`, atomically.
    func saveCheckpoint() throws {
        guard let url = checkpointURL else { return }
        // The step loop never applies a non-finite update, so this is a last line of defence: a NaN state must
        // never replace the good checkpoint on disk.
        if let bad = optimizer.firstNonFiniteState() {
            throw TrainingError("'\(bad)' (or its optimiser state) holds NaN or infinity after epoch \(completedEpochs); \(url.path) was not overwritten and still holds the previous epoch")
        }
        let contents = try checkpointContents()
        try SafeTensors.write(contents.tensors, metadata: contents.metadata, to: url)
    }

    /// The tensors and metadata of a checkpoint of the run as it stands (also what rank 0 sends the other ranks).
    func checkpointContents() throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        var tensors: [String: Tensor] = optimizer.stateTensors()
        for (name, parameter) in model.trainableParameters { tensors["param.\(name)"] = parameter }
        for (name, value) in bestParameters { tensors["best.\(name)"] = value }
        var metadata = ["format": "pt"]
        if advancedStage, let staged = stagedMethod {
            let stage = try staged.stageState(model)
            metadata["peft_stage"] = stage.json
            for (name, value) in stage.tensors { tensors["stage.\(name)"] = value }
        }
        let state = CheckpointState(configuration: configuration, completedEpochs: completedEpochs,
                                    optimizerStep: optimizer.step, bestEpoch: bestEpoch,
                                    bestValidationAccuracy: bestValidationAccuracy, history: history,
                                    learningRateFactor: learningRateFactor, skippedSteps: skippedSteps,
                                    consecutiveSkips: consecutiveSkips)
        metadata["peft_training_state"] = String(decoding: try jsonData(state), as: UTF8.self)
        return (tensors, metadata)
    }

    /// Loads a checkpoint written by `saveCheckpoint`, refusing one made with a different configuration.
    func restoreCheckpoint(from url: URL) throws {
        let file = try SafeTensorsFile(path: url.path)
        let state = try CheckpointState.read(from: file, path: url.path)
        try restore(state, tensors: try file.loadAll(), stageJSON: file.metadata["peft_stage"], source: url.path)
    }

    /// Puts a checkpoint's state and tensors into the run; `source` names where they came from in errors.
    func restore(_ state: CheckpointState, tensors: [String: Tensor], stageJSON: String?, source: String) throws {
        var expected = configuration, found = state.configuration
        expected.epochs = 0; found.epochs = 0  // extending a run with more epochs is allowed
        // How non-finite steps are handled does not change the weights saved so far, so it may change on resume.
        found.onNonFinite = expected.onNonFinite; found.maxConsecutiveSkips = expected.maxConsecutiveSkips
        guard expected == found else {
            let changes = (try? Self.differences(from: found, to: expected)) ?? []
            let list = changes.isEmpty ? "model \(state.configuration.model), task \(state.configuration.task), method \(state.configuration.method)" : changes.joined(separator: "; ")
            throw TrainingError("\(source): made by a different run configuration (\(list)); resume with the checkpoint's settings, use another --out, or drop --resume")
        }
        guard state.completedEpochs <= configuration.epochs else {
            throw TrainingError("\(source): the run has already completed \(state.completedEpochs) epochs, more than the \(configuration.epochs) asked for; give --epochs \(state.completedEpochs) or more to resume it")
        }
        if let stageJSON, let staged = stagedMethod {
            var stageTensors: [String: Tensor] = [:]
            for (key, value) in tensors where key.hasPrefix("stage.") { stageTensors[String(key.dropFirst(6))] = value }
            try staged.restoreStage(model, json: stageJSON, tensors: stageTensors)
            advancedStage = true
            optimizer = Self.makeOptimizer(model, configuration)
        }
        for (name, parameter) in model.trainableParameters {
            guard let value = tensors["param.\(name)"], value.shape == parameter.shape else {
                throw TrainingError("\(source): tensor 'param.\(name)' is missing or has the wrong shape")
            }
            parameter.assign(value)
        }
        bestParameters = [:]
        for (name, _) in model.trainableParameters {
            if let value = tensors["best.\(name)"] { bestParameters[name] = value.copy() }
        }
        try optimizer.restore(from: tensors, step: state.optimizerStep, source: source)
        completedEpochs = state.completedEpochs
        bestEpoch = state.bestEpoch
        bestValidationAccuracy = state.bestValidationAccuracy
        history = state.history
        learningRateFactor = state.learningRateFactor ?? 1
        skippedSteps = state.skippedSteps ?? 0
        consecutiveSkips = state.consecutiveSkips ?? 0
    }

    /// The settings that differ between two configurations, as "key: old -> new" (nested keys dotted).
    static func differences(from old: TrainingConfiguration, to new: TrainingConfiguration) throws -> [String] {
        func flatten(_ value: Any, _ prefix: String, into result: inout [String: String]) {
            if let object = value as? [String: Any] {
                for (key, inner) in object { flatten(inner, prefix.isEmpty ? key : prefix + "." + key, into: &result) }
            } else {
                result[prefix] = "\(value)"
            }
        }
        var a: [String: String] = [:], b: [String: String] = [:]
        flatten(try JSONSerialization.jsonObject(with: jsonData(old)), "", into: &a)
        flatten(try JSONSerialization.jsonObject(with: jsonData(new)), "", into: &b)
        return Set(a.keys).union(b.keys).sorted().compactMap { key in
            a[key] == b[key] ? nil : "\(key): \(a[key] ?? "unset") in the checkpoint, \(b[key] ?? "unset") now"
        }
    }
}
