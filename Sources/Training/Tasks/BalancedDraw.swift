import Engine

/// Class-balanced draws of the 1k protocol: per-class quotas and drawing several disjoint splits from
/// per-class candidate lists.
enum BalancedDraw {
    /// `total` spread over `classCount` classes as equally as possible, the remainder going one each to the
    /// first classes (800 over 6 classes: 134, 134, 133, 133, 133, 133).
    static func quotas(total: Int, classCount: Int) -> [Int] {
        precondition(classCount > 0, "quotas(total:classCount:) needs at least one class")
        let base = total / classCount, remainder = total % classCount
        return (0..<classCount).map { base + ($0 < remainder ? 1 : 0) }
    }

    /// Indices of the items of each class, in item order.
    static func indicesByClass(_ labels: [Int], classCount: Int) -> [[Int]] {
        var result = [[Int]](repeating: [], count: classCount)
        for (index, label) in labels.enumerated() where label >= 0 && label < classCount { result[label].append(index) }
        return result
    }

    /// Draws disjoint splits: each class's candidates are shuffled with `generator`, then split `s` takes
    /// `quotas[s][class]` of them in turn, skipping candidates `accept` rejects (e.g. exact duplicates of items
    /// already taken). Each split's indices are finally shuffled so classes are interleaved.
    ///
    /// - Throws: ``TaskError`` beginning with `context` when a class has too few acceptable candidates.
    static func draw(candidatesByClass: [[Int]], quotas: [[Int]], generator: inout RandomGenerator, context: String,
                     accept: (Int) -> Bool = { _ in true }) throws -> [[Int]] {
        var splits = [[Int]](repeating: [], count: quotas.count)
        for (label, candidates) in candidatesByClass.enumerated() {
            var order = candidates
            generator.taskShuffle(&order)
            var next = 0
            for split in quotas.indices {
                var taken = 0
                while taken < quotas[split][label] {
                    guard next < order.count else {
                        let needed = quotas.reduce(0) { $0 + $1[label] }
                        throw TaskError("\(context): class \(label) has \(candidates.count) candidates, fewer usable than the \(needed) needed")
                    }
                    let candidate = order[next]
                    next += 1
                    if accept(candidate) {
                        splits[split].append(candidate)
                        taken += 1
                    }
                }
            }
        }
        for split in splits.indices { generator.taskShuffle(&splits[split]) }
        return splits
    }
}
