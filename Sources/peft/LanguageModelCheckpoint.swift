import ArgumentParser
import Checkpoints
import Engine
import Foundation
import Training

/// One line of `train-lm`'s log (`log.jsonl`, and `history` in result.json): a logged step's mean training loss or an
/// epoch's validation loss.
struct LanguageLogRecord: Codable, Equatable {
    var step: Int?
    var epoch: Int
    var trainLoss: Double?
    var validationLoss: Double?

    enum CodingKeys: String, CodingKey {
        case step, epoch
        case trainLoss = "train_loss"
        case validationLoss = "validation_loss"
    }
}

/// What a `train-lm` checkpoint holds besides tensors (JSON in the safetensors metadata): the settings that decide
/// the run's numbers, how far it got, the best validation so far and the log.
struct LanguageTrainingState: Codable {
    /// Settings a resumed run must share (learning rate, data, method config, ...), as text.
    var settings: [String: String]
    var completedSteps: Int
    var optimizerStep: Int
    /// Epochs finished, validation included.
    var completedEpochs: Int
    var bestEpoch: Int?
    var bestValidationLoss: Double?
    var history: [LanguageLogRecord]

    static let metadataKey = "peft_lm_training_state"
    static let fileName = "checkpoint.safetensors"

    /// Differences between the checkpoint's settings and these, as "key: old in the checkpoint, new now".
    func differences(from current: [String: String]) -> [String] {
        Set(settings.keys).union(current.keys).sorted().compactMap { key in
            settings[key] == current[key] ? nil : "\(key): \(settings[key] ?? "unset") in the checkpoint, \(current[key] ?? "unset") now"
        }
    }

    /// Refuses counters no run writes (a damaged or edited file).
    func validate(path: String, plannedSteps: Int, epochs: Int) throws {
        func check(_ ok: Bool, _ what: String) throws {
            if !ok { throw ValidationError("\(path): the training state is inconsistent: \(what)") }
        }
        try check(completedSteps >= 0 && completedSteps <= plannedSteps, "completedSteps is \(completedSteps) (0...\(plannedSteps))")
        try check(optimizerStep >= 0 && optimizerStep <= completedSteps, "optimizerStep is \(optimizerStep) for \(completedSteps) steps")
        try check(completedEpochs >= 0 && completedEpochs <= epochs, "completedEpochs is \(completedEpochs) (0...\(epochs))")
        try check(bestEpoch.map { $0 >= 1 && $0 <= completedEpochs } ?? true, "bestEpoch \(bestEpoch ?? 0) with \(completedEpochs) epochs done")
        try check(bestValidationLoss.map { $0.isFinite && $0 >= 0 } ?? true, "bestValidationLoss is \(bestValidationLoss ?? 0)")
    }
}

/// Writing and reading `train-lm` checkpoints: trainable weights (`param.NAME`), the best weights on validation
/// (`best.NAME`), AdamW's moments, and the state, in one safetensors file replaced atomically.
enum LanguageModelCheckpoint {
    static func write(_ state: LanguageTrainingState, parameters: [(String, Tensor)], best: [String: Tensor],
                      optimizer: [String: Tensor], to url: URL) throws {
        var tensors = optimizer
        for (name, parameter) in parameters { tensors["param.\(name)"] = parameter }
        for (name, value) in best { tensors["best.\(name)"] = value }
        let json = String(decoding: try JSONEncoder.sortedKeys.encode(state), as: UTF8.self)
        try SafeTensors.write(tensors, metadata: ["format": "pt", LanguageTrainingState.metadataKey: json], to: url)
    }

    /// The state and tensors of the checkpoint at `url`, with errors naming the file.
    static func read(_ url: URL) throws -> (LanguageTrainingState, [String: Tensor]) {
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(path: url.path) } catch { throw ValidationError("--resume: \(error)") }
        guard let text = file.metadata[LanguageTrainingState.metadataKey] else {
            throw ValidationError("\(url.path): not a train-lm checkpoint (no '\(LanguageTrainingState.metadataKey)' in its metadata)")
        }
        let state: LanguageTrainingState
        do { state = try JSONDecoder().decode(LanguageTrainingState.self, from: Data(text.utf8)) } catch {
            throw ValidationError("\(url.path): the training state in the metadata is not readable: \(describeDecodingError(error))")
        }
        let tensors: [String: Tensor]
        do { tensors = try file.loadAll() } catch { throw ValidationError("\(url.path): \(error)") }
        return (state, tensors)
    }
}

/// Appends records to `log.jsonl`, one JSON object per line, each written before the run goes on.
final class LanguageLog {
    let url: URL
    init(url: URL) { self.url = url }

    func append(_ record: LanguageLogRecord) throws {
        var line = try JSONEncoder.sortedKeys.encode(record)
        line.append(0x0A)
        if !FileManager.default.fileExists(atPath: url.path) {
            guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
                throw ValidationError("cannot create \(url.path)")
            }
        }
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: line)
    }
}

extension JSONEncoder {
    /// An encoder that writes keys in order, so that equal values give equal files.
    static var sortedKeys: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}
