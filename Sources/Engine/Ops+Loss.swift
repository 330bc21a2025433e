// Cross-entropy with label smoothing, and dropout.

/// Mean cross-entropy of `logits` [B, K] against class `labels`, with label smoothing `smoothing`:
/// the target is (1 - smoothing) on the label plus smoothing / K on every class.
/// Gradient: (softmax(logits) - target) / B.
public func crossEntropy(_ logits: Tensor, labels: [Int], smoothing: Float = 0) -> Tensor {
    precondition(logits.rank == 2 && logits.shape[0] == labels.count,
                 "crossEntropy: logits \(logits.shape) for \(labels.count) labels")
    let batch = logits.shape[0], classes = logits.shape[1]
    for label in labels { precondition(label >= 0 && label < classes, "crossEntropy: label \(label) outside 0..<\(classes)") }
    let probabilities = logits.copy()
    var total: Double = 0
    for b in 0..<batch {
        let row = logits.data + b * classes
        var maxValue = -Float.infinity
        for c in 0..<classes { maxValue = max(maxValue, row[c]) }
        var sumExp: Double = 0
        for c in 0..<classes { sumExp += Foundation.exp(Double(row[c] - maxValue)) }
        let logSum = Double(maxValue) + Foundation.log(sumExp)
        let p = probabilities.data + b * classes
        for c in 0..<classes {
            let logP = Double(row[c]) - logSum
            p[c] = Float(Foundation.exp(logP))
            let target = Double(smoothing) / Double(classes) + (c == labels[b] ? Double(1 - smoothing) : 0)
            total -= target * logP
        }
    }
    let out = Tensor(scalar: Float(total / Double(batch)))
    let logitsNode = logits.node
    return out.recording("crossEntropy", [logits]) { g in
        let scale = g.data[0] / Float(batch)
        let gl = logitsNode.gradPointer()
        for b in 0..<batch {
            for c in 0..<classes {
                let target = smoothing / Float(classes) + (c == labels[b] ? 1 - smoothing : 0)
                gl[b * classes + c] += scale * (probabilities.data[b * classes + c] - target)
            }
        }
    }
}

/// Inverted dropout: zeroes each element with probability `p` and scales the rest by 1/(1-p).
/// Identity when `p` is 0 (or when not training, which callers express by passing 0).
public func dropout(_ x: Tensor, probability p: Float, generator: inout RandomGenerator) -> Tensor {
    precondition(p >= 0 && p < 1, "dropout probability \(p) must be in [0, 1)")
    if p == 0 { return x }
    let keepScale = 1 / (1 - p)
    let mask = Tensor(uninitialized: x.shape)
    for i in 0..<x.count { mask.data[i] = generator.nextUniform() < p ? 0 : keepScale }
    return x * mask
}

import Foundation
