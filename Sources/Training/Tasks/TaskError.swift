import Foundation

/// A task could not be found or built; the message names the task (and file, where one is involved) and the
/// problem.
public struct TaskError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// The full message.
    public let description: String

    /// Creates an error with a one-line message.
    public init(_ description: String) { self.description = description }

    /// Same text as ``description``, for `localizedDescription`.
    public var errorDescription: String? { description }
}
