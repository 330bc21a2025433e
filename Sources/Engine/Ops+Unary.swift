// Unary elementwise ops: scaling, GELU (exact, erf form), ReLU, and their gradients.

import VectorKernels

extension Tensor {
    /// self * factor + offset.
    public func affine(scale factor: Float, offset: Float = 0) -> Tensor {
        let out = Tensor(uninitialized: shape)
        let x = data, y = out.data
        Parallel.forEachChunk(count) { r in for i in r { y[i] = x[i] * factor + offset } }
        let inputNode = node
        return out.recording("affine", [self]) { g in
            let (gx, fresh) = inputNode.gradPointerForWriting(), pg = g.data
            if fresh {
                Parallel.forEachChunk(g.count) { r in for i in r { gx[i] = pg[i] * factor } }
            } else {
                Parallel.forEachChunk(g.count) { r in for i in r { gx[i] += pg[i] * factor } }
            }
        }
    }

    /// self * factor.
    public func scaled(by factor: Float) -> Tensor { affine(scale: factor) }
}

/// Scalar product.
public func * (a: Tensor, factor: Float) -> Tensor { a.scaled(by: factor) }
/// Negation.
public prefix func - (a: Tensor) -> Tensor { a.scaled(by: -1) }

@inline(__always)
func geluVector(_ x: Float16x) -> Float16x {
    let half = Float16x(repeating: 0.5), one = Float16x(repeating: 1)
    return half * x * (one + vectorErf(x * Float16x(repeating: 0.707_106_781_186_547_5)))
}

/// d gelu / dx = Phi(x) + x * phi(x).
@inline(__always)
func geluDerivativeVector(_ x: Float16x) -> Float16x {
    let half = Float16x(repeating: 0.5), one = Float16x(repeating: 1)
    let cdf = half * (one + vectorErf(x * Float16x(repeating: 0.707_106_781_186_547_5)))
    let pdf = vectorExp(Float16x(repeating: -0.5) * x * x) * Float16x(repeating: 0.398_942_280_401_432_7)
    return cdf + x * pdf
}

/// GELU with the exact erf form, 0.5 x (1 + erf(x / sqrt 2)).
/// Backward is one fused pass: dx += dy * (Phi(x) + x phi(x)), no derivative tensor is stored.
public func gelu(_ x: Tensor) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    let input = x.data, output = out.data, count = x.count
    let kernels = ElementwiseKernels.table
    Parallel.forEachChunk(count / 16 + 1, grain: 1024) { range in
        if let kernels {
            let start = range.lowerBound * 16, end = min(range.upperBound * 16, count)
            if start < end { kernels.geluForward(input + start, output + start, end - start) }
            return
        }
        let end = min(range.upperBound * 16, count)
        var i = range.lowerBound * 16
        while i + 16 <= end {
            storeVector(geluVector(loadVector(input + i)), output + i)
            i += 16
        }
        while i < end { output[i] = scalarViaVector(input[i], geluVector); i += 1 }
    }
    return out.recording("gelu", [x]) { g in
        let (gx, fresh) = x.gradPointerForWriting(), pg = g.data
        Parallel.forEachChunk(count / 16 + 1, grain: 1024) { range in
            if let kernels {
                let start = range.lowerBound * 16, end = min(range.upperBound * 16, count)
                if start < end { kernels.geluBackward(input + start, pg + start, gx + start, end - start, fresh ? 0 : 1) }
                return
            }
            let end = min(range.upperBound * 16, count)
            var i = range.lowerBound * 16
            while i + 16 <= end {
                // A fresh buffer is uninitialised: never read it.
                let previous = fresh ? Float16x(repeating: 0) : loadVector(gx + i)
                let updated = previous + loadVector(pg + i) * geluDerivativeVector(loadVector(input + i))
                storeVector(updated, gx + i)
                i += 16
            }
            while i < end {
                let previous = fresh ? 0 : gx[i]
                gx[i] = previous + pg[i] * scalarViaVector(input[i], geluDerivativeVector); i += 1
            }
        }
    }
}

/// max(x, 0).
public func relu(_ x: Tensor) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    let px = x.data, y = out.data
    Parallel.forEachChunk(x.count) { r in for i in r { y[i] = max(px[i], 0) } }
    return out.recording("relu", [x]) { g in
        let gx = x.gradPointer(), pg = g.data
        Parallel.forEachChunk(g.count) { r in for i in r where px[i] > 0 { gx[i] += pg[i] } }
    }
}
