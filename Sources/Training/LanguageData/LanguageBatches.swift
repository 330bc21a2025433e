import Engine

/// One padded batch of a causal language model's training data.
public struct LanguageBatch: Sendable, Equatable {
    /// Token ids, every row padded to the longest row with the pad token.
    public var ids: [[Int32]]
    /// 1 for real tokens, 0 for padding.
    public var attentionMask: [[Int]]
    /// Positions that count in the loss (never padding).
    public var lossMask: [[Bool]]

    /// Tokens in the batch, padding included.
    public var paddedTokens: Int { ids.reduce(0) { $0 + $1.count } }
    /// Real tokens.
    public var realTokens: Int { attentionMask.reduce(0) { $0 + $1.reduce(0, +) } }
}

/// Batches for one epoch: the examples shuffled with the seed, grouped into buckets of similar length (so little
/// of each batch is padding), cut into batches, and the batches shuffled again.
public enum LanguageBatches {
    /// Examples per bucket, in batches: a bucket of `bucketBatches * batchSize` examples is sorted by length.
    public static let bucketBatches = 16

    public static func epoch(_ examples: [TokenizedExample], batchSize: Int, padToken: Int32, seed: UInt64,
                             epoch: Int) -> [LanguageBatch] {
        guard !examples.isEmpty, batchSize >= 1 else { return [] }
        var generator = RandomGenerator(seed: seed &+ 0x9E37_79B9 &* UInt64(epoch + 1))
        var order = Array(examples.indices)
        shuffle(&order, &generator)
        var batches: [[Int]] = []
        let bucket = bucketBatches * batchSize
        var start = 0
        while start < order.count {
            let end = min(start + bucket, order.count)
            let sorted = order[start..<end].sorted { examples[$0].ids.count < examples[$1].ids.count }
            var index = 0
            while index < sorted.count {
                batches.append(Array(sorted[index..<min(index + batchSize, sorted.count)]))
                index += batchSize
            }
            start = end
        }
        shuffle(&batches, &generator)
        return batches.map { pad($0.map { examples[$0] }, padToken: padToken) }
    }

    /// The examples as one right-padded batch.
    public static func pad(_ examples: [TokenizedExample], padToken: Int32) -> LanguageBatch {
        let width = examples.map(\.ids.count).max() ?? 0
        var batch = LanguageBatch(ids: [], attentionMask: [], lossMask: [])
        for example in examples {
            let padding = width - example.ids.count
            batch.ids.append(example.ids + [Int32](repeating: padToken, count: padding))
            batch.attentionMask.append([Int](repeating: 1, count: example.ids.count) + [Int](repeating: 0, count: padding))
            batch.lossMask.append(example.targets + [Bool](repeating: false, count: padding))
        }
        return batch
    }

    private static func shuffle<T>(_ values: inout [T], _ generator: inout RandomGenerator) {
        guard values.count > 1 else { return }
        for i in stride(from: values.count - 1, to: 0, by: -1) {
            let j = Int(generator.next() % UInt64(i + 1))
            values.swapAt(i, j)
        }
    }
}
