// Binary elementwise ops (add, subtract, multiply, divide) with NumPy broadcasting, forward and backward.

/// Result shape of broadcasting two shapes (NumPy rules), or nil when they are incompatible.
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let rank = max(a.count, b.count)
    var result = [Int](repeating: 1, count: rank)
    for i in 0..<rank {
        let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
        let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
        if da == db || db == 1 { result[i] = da } else if da == 1 { result[i] = db } else { return nil }
    }
    return result
}

/// Element strides of `shape` seen through `outShape` (0 along broadcast dimensions).
func broadcastStrides(_ shape: [Int], to outShape: [Int]) -> [Int] {
    let rank = outShape.count
    var strides = [Int](repeating: 0, count: rank)
    var running = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
        let outIndex = i + rank - shape.count
        strides[outIndex] = shape[i] == 1 && outShape[outIndex] != 1 ? 0 : running
        running *= shape[i]
    }
    return strides
}

/// Calls `body(outOffset, aOffset, bOffset, length, aStep, bStep)` for each row of the last dimension.
@inline(__always)
func forEachBroadcastRow(
    _ outShape: [Int], _ aStrides: [Int], _ bStrides: [Int],
    _ body: (Int, Int, Int, Int, Int, Int) -> Void
) {
    let rank = outShape.count
    if rank == 0 { body(0, 0, 0, 1, 0, 0); return }
    let inner = outShape[rank - 1]
    let rows = outShape.dropLast().reduce(1, *)
    var index = [Int](repeating: 0, count: max(rank - 1, 0))
    var aOff = 0, bOff = 0
    for row in 0..<rows {
        body(row * inner, aOff, bOff, inner, aStrides[rank - 1], bStrides[rank - 1])
        var d = rank - 2
        while d >= 0 {
            index[d] += 1
            aOff += aStrides[d]; bOff += bStrides[d]
            if index[d] < outShape[d] { break }
            aOff -= aStrides[d] * outShape[d]; bOff -= bStrides[d] * outShape[d]
            index[d] = 0
            d -= 1
        }
    }
}

enum BinaryOp { case add, subtract, multiply, divide }

/// The row length when `b` is a single row (shape [C] or [1, ..., 1, C]) broadcast over `a` (shape [..., C]), else nil.
@inline(__always)
func rowVectorWidth(_ a: [Int], _ b: [Int]) -> Int? {
    guard let width = a.last, width > 0, a.count >= b.count, b.last == width,
          b.dropLast().allSatisfy({ $0 == 1 }) else { return nil }
    return width
}

@inline(__always)
func applyBinary(_ op: BinaryOp, _ x: Float, _ y: Float) -> Float {
    switch op {
    case .add: return x + y
    case .subtract: return x - y
    case .multiply: return x * y
    case .divide: return x / y
    }
}

func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor, _ name: String) -> Tensor {
    guard let outShape = broadcastShape(a.shape, b.shape) else {
        preconditionFailure("\(name): shapes \(a.shape) and \(b.shape) do not broadcast")
    }
    let out = Tensor(uninitialized: outShape)
    let o = out.data, pa = a.data, pb = b.data
    if a.shape == b.shape {
        Parallel.forEachChunk(out.count) { r in
            switch op {
            case .add: for i in r { o[i] = pa[i] + pb[i] }
            case .subtract: for i in r { o[i] = pa[i] - pb[i] }
            case .multiply: for i in r { o[i] = pa[i] * pb[i] }
            case .divide: for i in r { o[i] = pa[i] / pb[i] }
            }
        }
    } else if let width = rowVectorWidth(a.shape, b.shape) {
        // b is one row broadcast over every row of a (per-channel scale, bias): parallel over rows.
        let rows = out.count / width
        Parallel.forEachChunk(rows, grain: max(1, 16_384 / width)) { r in
            for row in r {
                let x = pa + row * width, y = o + row * width
                switch op {
                case .add: for j in 0..<width { y[j] = x[j] + pb[j] }
                case .subtract: for j in 0..<width { y[j] = x[j] - pb[j] }
                case .multiply: for j in 0..<width { y[j] = x[j] * pb[j] }
                case .divide: for j in 0..<width { y[j] = x[j] / pb[j] }
                }
            }
        }
    } else {
        let sa = broadcastStrides(a.shape, to: outShape), sb = broadcastStrides(b.shape, to: outShape)
        forEachBroadcastRow(outShape, sa, sb) { oOff, aOff, bOff, n, aStep, bStep in
            for j in 0..<n { o[oOff + j] = applyBinary(op, pa[aOff + j * aStep], pb[bOff + j * bStep]) }
        }
    }
    // Backward holds the inputs' nodes; it keeps an input's values only when a gradient formula reads them.
    let aNode = a.node, bNode = b.node, aShape = a.shape, bShape = b.shape, aIsB = a === b
    // The general broadcast loop (shapes other than equal or row-vector, or a row vector that needs a gradient)
    // reads both.
    let rowVector = a.shape != b.shape && rowVectorWidth(a.shape, b.shape) != nil
    let general = a.shape != b.shape && (!rowVector || b.needsGrad)
    let needA = general || ((op == .multiply || op == .divide) && b.needsGrad)
    let needB = general || (op == .multiply && a.needsGrad) || op == .divide
    let keptValues = (needA ? a.storage : nil, needB ? b.storage : nil)
    return out.recording(name, [a, b]) { g in
        withExtendedLifetime(keptValues) {
        let pg = g.data
        if aShape == bShape {
            // For add/subtract, a takes over the output gradient's buffer when it can (b is done first, since
            // it reads that buffer).
            let aAdopts = aNode.needsGrad && (op == .add || op == .subtract) && !aIsB && aNode.grad == nil && !aNode.requiresGrad
            if aNode.needsGrad && !aAdopts {
                let (ga, fresh) = aNode.gradPointerForWriting()
                Parallel.forEachChunk(g.count) { r in
                    switch (op, fresh) {
                    case (.add, false), (.subtract, false): for i in r { ga[i] += pg[i] }
                    case (.add, true), (.subtract, true): for i in r { ga[i] = pg[i] }
                    case (.multiply, false): for i in r { ga[i] += pg[i] * pb[i] }
                    case (.multiply, true): for i in r { ga[i] = pg[i] * pb[i] }
                    case (.divide, false): for i in r { ga[i] += pg[i] / pb[i] }
                    case (.divide, true): for i in r { ga[i] = pg[i] / pb[i] }
                    }
                }
            }
            if bNode.needsGrad {
                let gb = bNode.gradPointer()
                Parallel.forEachChunk(g.count) { r in
                    switch op {
                    case .add: for i in r { gb[i] += pg[i] }
                    case .subtract: for i in r { gb[i] -= pg[i] }
                    case .multiply: for i in r { gb[i] += pg[i] * pa[i] }
                    case .divide: for i in r { gb[i] -= pg[i] * pa[i] / (pb[i] * pb[i]) }
                    }
                }
            }
            if aAdopts && !aNode.adoptGradient(g) { accumulate(pg, into: aNode.gradPointer(), count: g.count) }
            return
        }
        let rowWidth = aNode.needsGrad ? rowVectorWidth(aShape, bShape) : nil
        if let width = rowWidth {
            // The gradient of the full-size operand, parallel over rows; b's (if any) by the general loop below.
            let (gaRows, fresh) = aNode.gradPointerForWriting()
            let rows = g.count / width
            Parallel.forEachChunk(rows, grain: max(1, 16_384 / width)) { r in
                for row in r {
                    let dy = pg + row * width, dx = gaRows + row * width
                    switch (op, fresh) {
                    case (.add, false), (.subtract, false): for j in 0..<width { dx[j] += dy[j] }
                    case (.add, true), (.subtract, true): for j in 0..<width { dx[j] = dy[j] }
                    case (.multiply, false): for j in 0..<width { dx[j] += dy[j] * pb[j] }
                    case (.multiply, true): for j in 0..<width { dx[j] = dy[j] * pb[j] }
                    case (.divide, false): for j in 0..<width { dx[j] += dy[j] / pb[j] }
                    case (.divide, true): for j in 0..<width { dx[j] = dy[j] / pb[j] }
                    }
                }
            }
            if !bNode.needsGrad { return }
        }
        let ga = aNode.needsGrad && rowWidth == nil ? aNode.gradPointer() : nil
        let sa = broadcastStrides(aShape, to: outShape), sb = broadcastStrides(bShape, to: outShape)
        let gb = bNode.needsGrad ? bNode.gradPointer() : nil
        forEachBroadcastRow(outShape, sa, sb) { oOff, aOff, bOff, n, aStep, bStep in
            for j in 0..<n {
                let gv = pg[oOff + j], x = pa[aOff + j * aStep], y = pb[bOff + j * bStep]
                if let ga {
                    switch op {
                    case .add, .subtract: ga[aOff + j * aStep] += gv
                    case .multiply: ga[aOff + j * aStep] += gv * y
                    case .divide: ga[aOff + j * aStep] += gv / y
                    }
                }
                if let gb {
                    switch op {
                    case .add: gb[bOff + j * bStep] += gv
                    case .subtract: gb[bOff + j * bStep] -= gv
                    case .multiply: gb[bOff + j * bStep] += gv * x
                    case .divide: gb[bOff + j * bStep] -= gv * x / (y * y)
                    }
                }
            }
        }
        }
    }
}

/// Elementwise a + b with broadcasting.
public func + (a: Tensor, b: Tensor) -> Tensor { binary(.add, a, b, "add") }
/// Elementwise a - b with broadcasting.
public func - (a: Tensor, b: Tensor) -> Tensor { binary(.subtract, a, b, "subtract") }
/// Elementwise a * b with broadcasting.
public func * (a: Tensor, b: Tensor) -> Tensor { binary(.multiply, a, b, "multiply") }
/// Elementwise a / b with broadcasting.
public func / (a: Tensor, b: Tensor) -> Tensor { binary(.divide, a, b, "divide") }
