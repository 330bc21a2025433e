import Foundation
import Training

/// What the run folder next to an adapter directory records (`runs/x/result.json` beside `runs/x/adapter`): the
/// task it was trained on and the image resolution, for adapters whose own config does not hold them.
struct RunSettings {
    var task: String?
    var resolution: Int?

    init(ofAdapter directory: URL) {
        let configuration = try? RunEvaluation.configuration(of: directory.deletingLastPathComponent())
        task = configuration?.task
        resolution = configuration?.resolution
    }

    /// The class names of the run's task, when it has `count` classes (read once per task and kept).
    func classNames(count: Int) -> [String]? {
        guard let task else { return nil }
        let names = Self.cache.names(of: task)
        return names?.count == count ? names : nil
    }

    private static let cache = ClassNameCache()
}

/// Class names per built-in task, read once (a task's data is read to learn them).
private final class ClassNameCache: @unchecked Sendable {
    private let lock = NSLock()
    private var names: [String: [String]?] = [:]

    func names(of task: String) -> [String]? {
        lock.lock(); defer { lock.unlock() }
        if let known = names[task] { return known }
        var found: [String]?
        if let kind = try? TaskRegistry.kind(of: task) {
            switch kind {
            case .image: found = try? TaskRegistry.image(named: task).classNames
            case .text: found = try? TaskRegistry.text(named: task).classNames
            }
        }
        names[task] = found
        return found
    }
}
