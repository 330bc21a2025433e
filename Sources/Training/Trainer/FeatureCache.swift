import Engine
import Foundation
import Methods

/// Pooled backbone features of every example of a split, computed once. When only the head trains (linear
/// probe), the backbone's output never changes, so each training step needs only the head: the cache turns
/// an epoch from a full forward pass per image into a few small matrix products.
final class FeatureCache {
    let plain: Tensor
    let flipped: Tensor?

    init(model: any Classifier, source: BatchSource, limit: Int? = nil, includeFlipped: Bool) {
        let count = min(source.count, limit ?? source.count)
        func compute(flip: Bool) -> Tensor {
            var rows: [Tensor] = []
            var start = 0
            var generator = RandomGenerator(seed: 0)
            while start < count {
                let indices = Array(start..<min(start + 64, count))
                let input: ClassifierInput
                if flip, let images = source as? ImageBatchSource {
                    input = images.batch(indices, flips: [Bool](repeating: true, count: indices.count))
                } else {
                    input = source.batch(indices, augment: false, generator: &generator)
                }
                rows.append(Autograd.withoutGrad { model.pooled(input) })
                start += 64
            }
            return concat(rows, axis: 0)
        }
        plain = compute(flip: false)
        flipped = includeFlipped ? compute(flip: true) : nil
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
