import Foundation

/// An adapter the server can serve: its name in the API and its directory.
public struct AdapterEntry: Sendable, Equatable {
    public let name: String
    public let directory: URL

    public init(name: String, directory: URL) {
        self.name = name
        self.directory = directory.standardizedFileURL
    }
}

/// The adapters a server knows by name (thread-safe). Knowing an adapter is not loading it: its tensors are read on
/// first use (or at start with `--preload`) and may be evicted again.
public final class AdapterCatalog: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String: AdapterEntry] = [:]

    /// At most this many adapters are known at once (a bound on what `POST /v1/adapters` can add).
    public static let maximumAdapters = 100_000

    public init(_ entries: [AdapterEntry] = []) {
        for entry in entries { self.entries[entry.name] = entry }
    }

    /// A name the API can carry in a URL path: 1-200 characters of letters, digits, `.`, `_`, `-` and `/`
    /// (no empty, `.` or `..` component).
    public static func isValidName(_ name: String) -> Bool {
        guard (1...200).contains(name.utf8.count) else { return false }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/")
        guard name.allSatisfy({ allowed.contains($0) }) else { return false }
        return name.split(separator: "/", omittingEmptySubsequences: false).allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
    }

    /// Every adapter directory (one holding `adapter_config.json`) under `root`, up to four levels deep, named by
    /// its path relative to `root`, with a last component `adapter` dropped (a run folder `runs/x/adapter` is
    /// served as `x` from `--adapters runs`). `root` itself may be an adapter directory (served under its own
    /// name). Throws when `root` is not a directory, or when two directories would get one name.
    public static func discover(in root: URL) throws -> [AdapterEntry] {
        let fileManager = FileManager.default
        var isDirectory: ObjCBool = false
        guard fileManager.fileExists(atPath: root.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ServingError(.badRequest, "--adapters \(root.path): not a directory")
        }
        var found: [String: URL] = [:]
        func visit(_ directory: URL, components: [String], depth: Int) throws {
            if fileManager.fileExists(atPath: directory.appendingPathComponent("adapter_config.json").path) {
                var parts = components
                if parts.count > 1, parts.last == "adapter" { parts.removeLast() }
                let name = parts.isEmpty ? directory.lastPathComponent : parts.joined(separator: "/")
                guard isValidName(name) else {
                    throw ServingError(.badRequest, "\(directory.path): the adapter name '\(name)' has characters other than letters, digits, '.', '_', '-' and '/'; rename the directory")
                }
                if let other = found[name] {
                    throw ServingError(.conflict, "\(directory.path) and \(other.path) would both be served as '\(name)'; rename one")
                }
                found[name] = directory
                return
            }
            guard depth < 4 else { return }
            let children = (try? fileManager.contentsOfDirectory(at: directory, includingPropertiesForKeys: [.isDirectoryKey],
                                                                 options: [.skipsHiddenFiles])) ?? []
            for child in children.sorted(by: { $0.lastPathComponent < $1.lastPathComponent }) {
                guard (try? child.resourceValues(forKeys: [.isDirectoryKey]).isDirectory) == true else { continue }
                try visit(child, components: components + [child.lastPathComponent], depth: depth + 1)
                if found.count > maximumAdapters {
                    throw ServingError(.badRequest, "--adapters \(root.path): more than \(maximumAdapters) adapter directories")
                }
            }
        }
        try visit(root, components: [], depth: 0)
        return found.sorted { $0.key < $1.key }.map { AdapterEntry(name: $0.key, directory: $0.value) }
    }

    /// The entry named `name`, if known.
    public func entry(named name: String) -> AdapterEntry? {
        lock.lock(); defer { lock.unlock() }
        return entries[name]
    }

    /// Every known entry, sorted by name.
    public var all: [AdapterEntry] {
        lock.lock(); defer { lock.unlock() }
        return entries.values.sorted { $0.name < $1.name }
    }

    public var count: Int {
        lock.lock(); defer { lock.unlock() }
        return entries.count
    }

    /// Adds `entry`; throws `.conflict` when the name is taken, `.badRequest` for a name the API cannot carry.
    public func add(_ entry: AdapterEntry) throws {
        guard Self.isValidName(entry.name) else {
            throw ServingError(.badRequest, "adapter name '\(entry.name)': use 1-200 letters, digits, '.', '_', '-' or '/'")
        }
        lock.lock(); defer { lock.unlock() }
        if let existing = entries[entry.name] {
            throw ServingError(.conflict, "an adapter named '\(entry.name)' is already served (from \(existing.directory.path)); delete it first or choose another name")
        }
        guard entries.count < Self.maximumAdapters else {
            throw ServingError(.badRequest, "the server already knows \(Self.maximumAdapters) adapters")
        }
        entries[entry.name] = entry
    }

    /// Forgets the entry named `name` and returns it (nil when unknown).
    @discardableResult
    public func remove(named name: String) -> AdapterEntry? {
        lock.lock(); defer { lock.unlock() }
        return entries.removeValue(forKey: name)
    }
}
