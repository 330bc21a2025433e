import Foundation

/// A dataset file could not be read: names the file and says what is wrong with it.
public struct DataReaderError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// Path of the offending file.
    public let file: String
    /// What is wrong, in plain words.
    public let problem: String

    /// Creates an error for `file` (a path) with a one-line `problem`.
    public init(file: String, problem: String) {
        self.file = file
        self.problem = problem
    }

    /// "`<file>`: `<problem>`".
    public var description: String { "\(file): \(problem)" }

    /// Same text as ``description``, for `localizedDescription`.
    public var errorDescription: String? { description }
}
