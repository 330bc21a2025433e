import Checkpoints
import Foundation

/// One line of the JSONL training log, written after every epoch.
public struct EpochRecord: Codable, Sendable, Equatable {
    public var epoch: Int
    public var step: Int
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var validationAccuracy: Double?
    public var learningRate: Float
    public var seconds: Double
    public var imagesPerSecond: Double
    public var secondsPerStep: Double
}

/// What a finished run reports (result.json).
public struct TrainingResult: Codable, Sendable {
    public var configuration: TrainingConfiguration
    public var trainableParameters: Int
    public var totalParameters: Int
    public var bestEpoch: Int
    public var bestValidationAccuracy: Double
    public var testAccuracy: Double
    public var secondsPerStep: Double
    public var examplesPerSecond: Double
    public var totalSeconds: Double
    public var history: [EpochRecord]
}

/// Encodes with sorted keys (stable files) and no escaping of slashes.
func jsonData<T: Encodable>(_ value: T, pretty: Bool = false) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return try encoder.encode(value)
}

/// Writes `data` to `url` atomically (see `Checkpoints.writeFileAtomically`).
public func writeAtomically(_ data: Data, to url: URL) throws { try writeFileAtomically(data, to: url) }
