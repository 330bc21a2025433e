import Checkpoints
import Engine
import Foundation
import Methods

/// Re-evaluates a finished (or interrupted) run from its directory.
public enum RunEvaluation {
    /// The configuration a run directory was trained with (from result.json, else checkpoint.safetensors).
    public static func configuration(of directory: URL) throws -> TrainingConfiguration {
        let resultURL = directory.appendingPathComponent("result.json")
        if RegularFile.exists(resultURL.path) {
            do { return try decodeJSONFile(TrainingResult.self, from: resultURL, what: "result file").configuration } catch {
                throw TrainingError("\(error)")
            }
        }
        let checkpointURL = directory.appendingPathComponent("checkpoint.safetensors")
        guard FileManager.default.fileExists(atPath: checkpointURL.path) else {
            throw TrainingError("\(directory.path): no result.json or checkpoint.safetensors (is this a run directory written by `peft train --out`?)")
        }
        let file = try SafeTensorsFile(path: checkpointURL.path)
        return try CheckpointState.read(from: file, path: checkpointURL.path).configuration
    }

    /// Accuracy of the run's best weights (best.safetensors, else the checkpoint's) on `split`
    /// ("test", "validation" or "train").
    public static func accuracy(of directory: URL, split: String, progress: @escaping (String) -> Void) throws -> Double {
        let configuration = try configuration(of: directory)
        let trainer = try TrainingSession.trainer(configuration, outputDirectory: nil, progress: progress)
        let weights = try bestWeights(in: directory)
        let parameters = Dictionary(uniqueKeysWithValues: trainer.model.trainableParameters)
        for (name, parameter) in parameters {
            guard let value = weights.tensors[name] else {
                throw TrainingError("\(weights.source): tensor '\(name)' is missing")
            }
            guard value.shape == parameter.shape else {
                throw TrainingError("\(weights.source): tensor '\(name)' has shape \(value.shape), the model expects \(parameter.shape)")
            }
            parameter.assign(value)
        }
        switch split {
        case "test": return trainer.evaluate(trainer.test)
        case "validation", "val": return trainer.evaluate(trainer.validation)
        case "train": return trainer.evaluate(trainer.train)
        default: throw TrainingError("unknown split '\(split)'; choose test, validation or train")
        }
    }

    static func bestWeights(in directory: URL) throws -> (tensors: [String: Tensor], source: String) {
        let best = directory.appendingPathComponent("best.safetensors")
        if FileManager.default.fileExists(atPath: best.path) {
            return (try SafeTensorsFile(path: best.path).loadAll(), best.path)
        }
        let checkpoint = directory.appendingPathComponent("checkpoint.safetensors")
        let all = try SafeTensorsFile(path: checkpoint.path).loadAll()
        var tensors: [String: Tensor] = [:]
        let prefix = all.keys.contains { $0.hasPrefix("best.") } ? "best." : "param."
        for (key, value) in all where key.hasPrefix(prefix) { tensors[String(key.dropFirst(prefix.count))] = value }
        return (tensors, checkpoint.path)
    }
}
