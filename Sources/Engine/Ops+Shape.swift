// Shape ops: reshape (a view), permute, concatenate, slice, and row gather (embedding lookup).

/// Adds `count` floats of `source` into `destination`, on all cores.
@inline(__always)
func accumulate(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float>, count: Int) {
    Parallel.forEachChunk(count) { r in for i in r { destination[i] += source[i] } }
}

extension Tensor {
    /// The same elements with another shape (one dimension may be -1). Shares storage with `self`.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var resolved = newShape
        if let unknown = newShape.firstIndex(of: -1) {
            let known = newShape.enumerated().filter { $0.offset != unknown }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "reshape: \(shape) into \(newShape)")
            resolved[unknown] = count / known
        }
        precondition(resolved.reduce(1, *) == count, "reshape: \(shape) (\(count) elements) into \(newShape)")
        let out = Tensor(shape: resolved, storage: storage)
        let inputNode = node, count = count
        return out.recording("reshape", [self]) { g in
            // Hand the buffer over when possible (nothing else reads it after this closure).
            if !inputNode.adoptGradient(g) { accumulate(g.data, into: inputNode.gradPointer(), count: count) }
        }
    }

    /// Reorders the dimensions: result dimension i is input dimension `axes[i]`.
    public func permuted(_ axes: [Int]) -> Tensor {
        precondition(axes.sorted() == Array(0..<rank), "permute: axes \(axes) for shape \(shape)")
        let outShape = axes.map { shape[$0] }
        var inStrides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * shape[i + 1] }
        let permutedStrides = axes.map { inStrides[$0] }
        let out = Tensor(uninitialized: outShape)
        permuteCopy(from: data, to: out.data, outShape: outShape, sourceStrides: permutedStrides, add: false)
        let inputNode = node
        return out.recording("permute", [self]) { g in
            // Scatter back: walk the output order and add into the input positions.
            permuteScatterAdd(from: g.data, to: inputNode.gradPointer(), outShape: outShape, sourceStrides: permutedStrides)
        }
    }

    /// Swaps two dimensions.
    public func transposed(_ axis0: Int = -2, _ axis1: Int = -1) -> Tensor {
        var axes = Array(0..<rank)
        axes.swapAt(normalizedAxis(axis0), normalizedAxis(axis1))
        return permuted(axes)
    }

    /// Elements `range` along `axis`.
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        let ax = normalizedAxis(axis)
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[ax], "slice \(range) of axis \(ax) in \(shape)")
        let outer = shape[..<ax].reduce(1, *), inner = shape[(ax + 1)...].reduce(1, *)
        var outShape = shape
        outShape[ax] = range.count
        let out = Tensor(uninitialized: outShape)
        let block = range.count * inner, x = data, y = out.data
        for o in 0..<outer {
            (y + o * block).update(from: x + (o * shape[ax] + range.lowerBound) * inner, count: block)
        }
        let inputNode = node, length = shape[ax]
        return out.recording("slice", [self]) { g in
            let gx = inputNode.gradPointer()
            for o in 0..<outer {
                let dst = gx + (o * length + range.lowerBound) * inner, src = g.data + o * block
                for i in 0..<block { dst[i] += src[i] }
            }
        }
    }
}

private func permuteCopy(from source: UnsafePointer<Float>, to destination: UnsafeMutablePointer<Float>,
                         outShape: [Int], sourceStrides: [Int], add: Bool) {
    let rank = outShape.count
    if rank == 0 { destination[0] = source[0]; return }
    let inner = outShape[rank - 1], innerStride = sourceStrides[rank - 1]
    let rows = outShape.dropLast().reduce(1, *)
    Parallel.forEachChunk(rows, grain: max(1, 8192 / max(inner, 1))) { rowRange in
        for row in rowRange {
            var rem = row, offset = 0
            for d in stride(from: rank - 2, through: 0, by: -1) {
                offset += (rem % outShape[d]) * sourceStrides[d]
                rem /= outShape[d]
            }
            let dst = destination + row * inner
            for j in 0..<inner { dst[j] = source[offset + j * innerStride] }
        }
    }
}

private func permuteScatterAdd(from gradient: UnsafePointer<Float>, to destination: UnsafeMutablePointer<Float>,
                               outShape: [Int], sourceStrides: [Int]) {
    let rank = outShape.count
    if rank == 0 { destination[0] += gradient[0]; return }
    let inner = outShape[rank - 1], innerStride = sourceStrides[rank - 1]
    let rows = outShape.dropLast().reduce(1, *)
    // Distinct output rows map to distinct input elements, so rows can be split across threads.
    Parallel.forEachChunk(rows, grain: max(1, 8192 / max(inner, 1))) { rowRange in
        for row in rowRange {
            var rem = row, offset = 0
            for d in stride(from: rank - 2, through: 0, by: -1) {
                offset += (rem % outShape[d]) * sourceStrides[d]
                rem /= outShape[d]
            }
            let src = gradient + row * inner
            for j in 0..<inner { destination[offset + j * innerStride] += src[j] }
        }
    }
}

/// Joins tensors along `axis`; all other dimensions must agree.
public func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
    precondition(!tensors.isEmpty, "concat: no tensors")
    let first = tensors[0]
    let ax = first.normalizedAxis(axis)
    for t in tensors {
        precondition(t.rank == first.rank && (0..<t.rank).allSatisfy { $0 == ax || t.shape[$0] == first.shape[$0] },
                     "concat: shape \(t.shape) does not match \(first.shape) outside axis \(ax)")
    }
    let outer = first.shape[..<ax].reduce(1, *), inner = first.shape[(ax + 1)...].reduce(1, *)
    let total = tensors.map { $0.shape[ax] }.reduce(0, +)
    var outShape = first.shape
    outShape[ax] = total
    let out = Tensor(uninitialized: outShape)
    var start = 0
    var starts: [Int] = []
    for t in tensors {
        starts.append(start)
        let block = t.shape[ax] * inner
        for o in 0..<outer {
            (out.data + (o * total + start) * inner).update(from: t.data + o * block, count: block)
        }
        start += t.shape[ax]
    }
    let parts = tensors.map { ($0.node, $0.shape[ax]) }
    return out.recording("concat", tensors) { g in
        for ((node, length), s) in zip(parts, starts) where node.needsGrad {
            let block = length * inner, gt = node.gradPointer()
            for o in 0..<outer {
                let src = g.data + (o * total + s) * inner, dst = gt + o * block
                for i in 0..<block { dst[i] += src[i] }
            }
        }
    }
}

/// Rows of `table` [V, C] picked by `indices`; the result has shape `indexShape + [C]`.
/// Backward adds each output row's gradient into its table row.
public func gatherRows(_ table: Tensor, indices: [Int32], indexShape: [Int]) -> Tensor {
    precondition(table.rank == 2, "gatherRows: table must be [rows, columns], got \(table.shape)")
    precondition(indexShape.reduce(1, *) == indices.count, "gatherRows: \(indices.count) indices for shape \(indexShape)")
    let rows = table.shape[0], columns = table.shape[1]
    for i in indices { precondition(i >= 0 && Int(i) < rows, "gatherRows: index \(i) outside 0..<\(rows)") }
    let out = Tensor(uninitialized: indexShape + [columns])
    for (position, index) in indices.enumerated() {
        (out.data + position * columns).update(from: table.data + Int(index) * columns, count: columns)
    }
    return out.recording("gatherRows", [table]) { g in
        let gt = table.gradPointer()
        for (position, index) in indices.enumerated() {
            let dst = gt + Int(index) * columns, src = g.data + position * columns
            for c in 0..<columns { dst[c] += src[c] }
        }
    }
}
