import Foundation

/// Why a serving request failed, with the kind of failure an HTTP layer maps to a status code.
public struct ServingError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The class of failure.
    public enum Kind: String, Sendable {
        /// The request itself is wrong (a missing field, an input that is not an image, an empty batch): 400.
        case badRequest
        /// No adapter of that name: 404.
        case notFound
        /// An adapter of that name already exists: 409.
        case conflict
        /// The adapter directory cannot be served on this base (unreadable, another base model): 422.
        case unprocessable
        /// The server is stopping and takes no new work: 503.
        case unavailable
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
