// Reductions: sum and mean over all elements or one axis.

extension Tensor {
    /// Sum of all elements, as a scalar tensor.
    public func sum() -> Tensor {
        var total: Double = 0
        let p = data
        for i in 0..<count { total += Double(p[i]) }
        let out = Tensor(scalar: Float(total))
        let inputNode = node, count = count
        return out.recording("sum", [self]) { g in
            let gx = inputNode.gradPointer(), value = g.data[0]
            Parallel.forEachChunk(count) { r in for i in r { gx[i] += value } }
        }
    }

    /// Mean of all elements, as a scalar tensor.
    public func mean() -> Tensor { sum().scaled(by: 1 / Float(max(count, 1))) }

    /// Sum over `axis`; the axis is kept with size 1 when `keepDims`.
    public func sum(axis: Int, keepDims: Bool = false) -> Tensor {
        let ax = normalizedAxis(axis)
        let outer = shape[..<ax].reduce(1, *), n = shape[ax], inner = shape[(ax + 1)...].reduce(1, *)
        var outShape = shape
        if keepDims { outShape[ax] = 1 } else { outShape.remove(at: ax) }
        let out = Tensor(zeros: outShape)
        let x = data, y = out.data
        Parallel.forEachChunk(outer, grain: max(1, 16_384 / max(n * inner, 1))) { r in
            for o in r {
                for k in 0..<n {
                    let src = x + (o * n + k) * inner, dst = y + o * inner
                    for i in 0..<inner { dst[i] += src[i] }
                }
            }
        }
        let inputNode = node
        return out.recording("sum(axis)", [self]) { g in
            let gx = inputNode.gradPointer(), pg = g.data
            Parallel.forEachChunk(outer, grain: max(1, 16_384 / max(n * inner, 1))) { r in
                for o in r {
                    for k in 0..<n {
                        let dst = gx + (o * n + k) * inner, src = pg + o * inner
                        for i in 0..<inner { dst[i] += src[i] }
                    }
                }
            }
        }
    }

    /// Mean over `axis`.
    public func mean(axis: Int, keepDims: Bool = false) -> Tensor {
        sum(axis: axis, keepDims: keepDims).scaled(by: 1 / Float(shape[normalizedAxis(axis)]))
    }
}
