import Collectives
import Engine
import Foundation
import Methods

/// Pooled backbone features of every example of a split, computed once. When only the head trains (linear
/// probe), the backbone's output never changes, so each training step needs only the head: the cache turns
/// an epoch from a full forward pass per image into a few small matrix products.
final class FeatureCache {
    let plain: Tensor
    let flipped: Tensor?

    init(plain: Tensor, flipped: Tensor?) {
        self.plain = plain
        self.flipped = flipped
    }

    /// The cache computed in this process alone.
    convenience init(model: any Classifier, source: BatchSource, limit: Int? = nil, includeFlipped: Bool) {
        let count = min(source.count, limit ?? source.count)
        self.init(plain: Self.features(model, source, count: count, flip: false) { _ in true },
                  flipped: includeFlipped ? Self.features(model, source, count: count, flip: true) { _ in true } : nil)
    }

    /// The cache computed by the ranks of `group` together: each computes every `size`-th batch of 64 and the
    /// features are summed over the ranks (the rows a rank skips are zero), so every rank ends with all of it.
    static func shared(model: any Classifier, source: BatchSource, limit: Int? = nil, includeFlipped: Bool,
                       group: ProcessGroup) throws -> FeatureCache {
        guard group.isDistributed else { return FeatureCache(model: model, source: source, limit: limit, includeFlipped: includeFlipped) }
        let count = min(source.count, limit ?? source.count)
        func compute(flip: Bool) throws -> Tensor {
            let features = Self.features(model, source, count: count, flip: flip) { $0 % group.size == group.rank }
            try group.allreduceSum(features.data, count: features.count, what: "the feature cache")
            return features
        }
        return FeatureCache(plain: try compute(flip: false), flipped: includeFlipped ? try compute(flip: true) : nil)
    }

    /// Pooled features [count, F] of the first `count` examples, in batches of 64; batches `take` refuses stay zero.
    static func features(_ model: any Classifier, _ source: BatchSource, count: Int, flip: Bool,
                         take: (Int) -> Bool) -> Tensor {
        var rows: [Tensor] = []
        var start = 0, batch = 0
        while start < count {
            let indices = Array(start..<min(start + 64, count))
            if take(batch) {
                let input = source.batch(indices, flips: [Bool](repeating: flip, count: indices.count))
                rows.append(Autograd.withoutGrad { model.pooled(input) })
            } else {
                rows.append(Tensor(zeros: [indices.count, model.head.inFeatures]))
            }
            start += 64
            batch += 1
        }
        return concat(rows, axis: 0)
    }

    /// Features [B, F] of `indices`, each from the flipped image where `flips` says so.
    func features(_ indices: [Int], flips: [Bool]) -> Tensor {
        let width = plain.shape[1]
        let out = Tensor(uninitialized: [indices.count, width])
        for (row, index) in indices.enumerated() {
            let source = (flips[row] ? flipped ?? plain : plain).data + index * width
            (out.data + row * width).update(from: source, count: width)
        }
        return out
    }
}
