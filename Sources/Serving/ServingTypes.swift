import Foundation
import Training

/// One example to classify: an image (decoded, any size) for a vision base, a text for a text encoder.
public enum ServingInput: Sendable {
    case image(InputImage)
    case text(String)
}

/// One class of a prediction: its index in the adapter's head, its name, its probability.
public struct ClassProbability: Sendable, Codable, Equatable {
    public let label: String
    public let index: Int
    public let probability: Float

    public init(label: String, index: Int, probability: Float) {
        self.label = label
        self.index = index
        self.probability = probability
    }
}

/// How a resident adapter's linear-layer updates meet the base weights while it serves.
public enum SwitchMode: String, Sendable, Codable {
    /// Folded into the base weights: no cost per request, a cost per switch.
    case fused
    /// Kept beside the base weights (an extra product per request), so a switch only re-points the layers.
    case unfused
}

/// How the server chooses between fused and unfused serving.
public enum SwitchPolicy: String, Sendable, CaseIterable {
    /// Always fold mergeable adapters into the weights.
    case fused
    /// Never fold them.
    case unfused
    /// Fold sparse adapters (SHiRA: a scatter of their values) always; fold dense ones (LoRA, DoRA, NEAT, RLRR)
    /// when their measured switch cost is below the measured per-example cost of running them unfused times the
    /// number of examples waiting for them.
    case auto
}

/// What the server knows of one adapter, for `GET /v1/adapters`.
public struct AdapterStatus: Sendable, Codable, Equatable {
    public var name: String
    public var path: String
    /// The method (`lora`, `shira`, ...); nil until the adapter was first loaded.
    public var method: String?
    public var classes: Int?
    /// Whether its tensors are in memory now.
    public var resident: Bool
    /// Whether it is the adapter attached to the base weights now.
    public var active: Bool
    /// Bytes of its tensors in memory (0 when not resident).
    public var bytes: Int
    /// Examples it has classified since the server started.
    public var examples: Int
    /// Switch cost (attach + detach) in milliseconds, fused, as measured when loaded (mergeable adapters only).
    public var fusedSwitchMilliseconds: Double?
    /// Extra milliseconds per example of running it unfused instead of fused, as measured when loaded.
    public var unfusedOverheadMilliseconds: Double?
    /// The mode it was last served in.
    public var lastMode: SwitchMode?
}

/// Counts the worker keeps, for `/health` and the benchmarks.
public struct ServingStatistics: Sendable, Codable, Equatable {
    public var requests = 0
    public var examples = 0
    public var batches = 0
    public var switches = 0
    public var loads = 0
    public var evictions = 0
    /// Total seconds spent switching (detach the old adapter, attach the new one).
    public var switchSeconds = 0.0
    /// Total seconds spent in forward passes.
    public var forwardSeconds = 0.0
    /// Requests waiting now.
    public var queued = 0
    /// Bytes held by tensors now (base, resident adapters, activations) and bytes of released tensor buffers kept
    /// for reuse (see `TensorMemory`).
    public var tensorBytes = 0
    public var pooledTensorBytes = 0
}
