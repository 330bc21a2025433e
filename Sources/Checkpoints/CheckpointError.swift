import Foundation

/// Any failure reading or writing a checkpoint (safetensors or ONNX).
///
/// The message always names the file and, when one is involved, the tensor, then says what is wrong, e.g.
/// `/models/a.safetensors: tensor 'x': data_offsets [16, 40) exceed buffer of 32 bytes`.
public struct CheckpointError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Broad category, for callers that want to react differently (the message is the main payload).
    public enum Kind: String, Sendable, Equatable {
        /// The file could not be opened, mapped, written or renamed.
        case io
        /// The file ends before the data it announces.
        case truncated
        /// The safetensors header (length or JSON) is malformed.
        case invalidHeader
        /// A tensor entry is inconsistent (offsets, shape, size, overlaps, holes).
        case invalidTensor
        /// The dtype is unknown or cannot be converted as asked.
        case unsupportedDtype
        /// A tensor looked up by name is not in the file.
        case missingTensor
        /// The bytes are not valid protobuf wire format.
        case invalidProtobuf
        /// Valid protobuf, but not an ONNX model this reader can use.
        case invalidONNX
        /// The weights do not match the expected model (missing, extra or mis-shaped tensors).
        case modelMismatch
        /// The caller passed inconsistent arguments (e.g. to the writer).
        case invalidArgument
        /// A tensor holds NaN or infinity (refused on load: such weights give silently wrong answers).
        case nonFinite
    }

    /// What kind of failure this is.
    public let kind: Kind
    /// The file involved.
    public let path: String
    /// The tensor involved, if any.
    public let tensor: String?
    /// What is wrong, in words.
    public let reason: String

    /// Creates an error about `path` (and `tensor`, when given).
    public init(_ kind: Kind, path: String, tensor: String? = nil, _ reason: String) {
        self.kind = kind
        self.path = path
        self.tensor = tensor
        self.reason = reason
    }

    /// `<path>: [tensor '<name>': ]<reason>`.
    public var description: String {
        if let tensor { return "\(path): tensor '\(tensor)': \(reason)" }
        return "\(path): \(reason)"
    }
}

extension CheckpointError: LocalizedError {
    public var errorDescription: String? { description }
}
