import Foundation

/// Mean cross-entropy of `logits` [R, V] over the rows whose target is not `ignored` (-100, as in PyTorch), e.g.
/// the next-token loss of a language model on completion tokens only. With no target left the loss is 0.
/// Gradient: (softmax(logits) - onehot(target)) / (rows counted), zero on ignored rows.
public func tokenCrossEntropy(_ logits: Tensor, targets: [Int], ignored: Int = -100) -> Tensor {
    precondition(logits.rank == 2 && logits.shape[0] == targets.count,
                 "tokenCrossEntropy: logits \(logits.shape) for \(targets.count) targets")
    let rows = logits.shape[0], classes = logits.shape[1]
    for target in targets where target != ignored {
        precondition(target >= 0 && target < classes, "tokenCrossEntropy: target \(target) outside 0..<\(classes)")
    }
    let counted = targets.filter { $0 != ignored }.count
    var logSums = [Double](repeating: 0, count: rows)
    var total: Double = 0
    let pl = logits.data
    for r in 0..<rows where targets[r] != ignored {
        let row = pl + r * classes
        var maximum = -Float.infinity
        for c in 0..<classes { maximum = max(maximum, row[c]) }
        var sum: Double = 0
        for c in 0..<classes { sum += Foundation.exp(Double(row[c] - maximum)) }
        logSums[r] = Double(maximum) + Foundation.log(sum)
        total += logSums[r] - Double(row[targets[r]])
    }
    let out = Tensor(scalar: counted == 0 ? 0 : Float(total / Double(counted)))
    return out.recording("tokenCrossEntropy", [logits]) { g in
        guard counted > 0 else { return }
        let scale = Double(g.data[0]) / Double(counted)
        let gl = logits.gradPointer()
        Parallel.forEachChunk(rows, grain: 8) { range in
            for r in range where targets[r] != ignored {
                let row = pl + r * classes, target = gl + r * classes
                for c in 0..<classes {
                    let p = Foundation.exp(Double(row[c]) - logSums[r])
                    target[c] += Float(scale * (p - (c == targets[r] ? 1 : 0)))
                }
            }
        }
    }
}
