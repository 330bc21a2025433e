import Foundation

/// An opt-in wall-clock profile of the engine's ops, split into forward and backward. It is a value of the
/// `ExecutionContext` (`context.profile`), so only the code run under that context is profiled and two profiles can
/// run at once in one process:
///
/// ```swift
/// let profile = Profile()
/// ExecutionContext.with({ $0.profile = profile }) { step() }
/// print(profile.forward, profile.gemmOperations)
/// ```
/// Without a profile (the default) the cost is one check per op. With one:
/// - forward: every op ends by calling `recording` (whether or not it attaches a backward), so the time since the
///   previous op finished (or since `beginForward()`) is charged to the op that just finished;
/// - backward: each node's backward closure is timed on its own by `Tensor.backward`; the rest of `backward`
///   (graph sort, freeing gradients) is charged to "autograd";
/// - `gemm` counts the floating-point operations it executes (2 m n k), and the attention op its own.
/// Op times are taken on the thread that created the profile (the engine's workers inherit the context but run no
/// whole ops); operation counts come from every thread.
public final class Profile: @unchecked Sendable {
    private let lock = NSLock()
    private let thread = pthread_self()
    private var lastMark: UInt64
    private var forwardSeconds: [String: Double] = [:]
    private var backwardSeconds: [String: Double] = [:]
    private var extraSeconds: [String: Double] = [:]
    private var gemmFLOPs: Double = 0
    private var attentionFLOPs: Double = 0
    private var gemmShapeStats: [GEMMShape: (calls: Int, seconds: Double)] = [:]

    /// An empty profile, for the calling thread.
    public init() { lastMark = Profiler.now() }

    private func locked<T>(_ body: () -> T) -> T { lock.lock(); defer { lock.unlock() }; return body() }

    @inline(__always) var onOwnThread: Bool { pthread_equal(thread, pthread_self()) != 0 }

    /// Marks the start of a forward pass: time before this point is not charged to the first op.
    public func beginForward() { if onOwnThread { locked { lastMark = Profiler.now() } } }

    /// Called by `recording`: charges the time since the last mark to the forward of `name`.
    func forwardOpFinished(_ name: String) {
        guard onOwnThread else { return }
        let t = Profiler.now()
        locked {
            forwardSeconds[name, default: 0] += Double(t &- lastMark) / 1e9
            lastMark = t
        }
    }

    /// Called by `Tensor.backward` for each node.
    func backwardOp(_ name: String, seconds: Double) {
        locked { backwardSeconds[name, default: 0] += seconds }
    }

    /// Adds time measured outside the engine's ops (optimizer, data, autograd bookkeeping) under `label`.
    public func add(_ label: String, seconds: Double) {
        locked { extraSeconds[label, default: 0] += seconds }
    }

    /// Times `body` and charges it to `label`.
    public func measure<T>(_ label: String, _ body: () throws -> T) rethrows -> T {
        let start = Profiler.now()
        let result = try body()
        add(label, seconds: Double(Profiler.now() &- start) / 1e9)
        if onOwnThread { locked { lastMark = Profiler.now() } }
        return result
    }

    func countGEMM(m: Int, n: Int, k: Int) { locked { gemmFLOPs += 2 * Double(m) * Double(n) * Double(k) } }

    func countAttention(_ flops: Double) { locked { attentionFLOPs += flops } }

    /// Records one `gemm` call of `shape` that took `seconds` (on the profile's own thread only).
    func gemmFinished(_ shape: GEMMShape, seconds: Double) {
        guard onOwnThread else { return }
        locked {
            let old = gemmShapeStats[shape] ?? (0, 0)
            gemmShapeStats[shape] = (old.calls + 1, old.seconds + seconds)
        }
    }

    /// Calls and seconds per GEMM shape so far (products run by `gemm` on the profile's thread).
    public var gemmShapes: [GEMMShape: (calls: Int, seconds: Double)] { locked { gemmShapeStats } }
    /// Seconds per op name in forward passes so far.
    public var forward: [String: Double] { locked { forwardSeconds } }
    /// Seconds per op name in backward passes so far.
    public var backward: [String: Double] { locked { backwardSeconds } }
    /// Seconds per label added with `add` / `measure`.
    public var extra: [String: Double] { locked { extraSeconds } }
    /// Floating-point operations executed by `gemm` (linear layers, matmul) so far.
    public var gemmOperations: Double { locked { gemmFLOPs } }
    /// Floating-point operations of the matrix products inside fused attention so far.
    public var attentionOperations: Double { locked { attentionFLOPs } }
}

/// The profile in force and the profile tables' helpers.
public enum Profiler {
    /// The profile of the running code's context, if it has one.
    @inline(__always) public static var active: Profile? { ExecutionContext.current.profile }

    /// Whether the running code is being profiled.
    public static var isEnabled: Bool { active != nil }

    @inline(__always) static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Times `body` under `label` in the active profile (just runs it without one).
    public static func measure<T>(_ label: String, _ body: () throws -> T) rethrows -> T {
        guard let profile = active else { return try body() }
        return try profile.measure(label, body)
    }

    /// Category of an op name, for the profile table.
    public static func category(of op: String) -> String {
        switch op {
        case "linear", "matmul", "sparseUpdateLinear", "lowRankLinear": return "GEMM (linear, matmul, SHiRA)"
        case "attention": return "attention (fused: QK^T, softmax, PV)"
        case "layerNorm", "softmax": return "norms (LayerNorm, softmax)"
        case "gelu", "relu", "affine", "add", "residualAdd", "subtract", "multiply", "divide", "sum", "sum(axis)":
            return "elementwise / activation"
        case "reshape", "permute", "slice", "concat", "gatherRows", "patchify": return "copies / reshape / patchify"
        case "crossEntropy": return "loss"
        default: return op
        }
    }
}

/// One matrix-product shape as `gemm` saw it: C (m x n) = op(A) (m x k) op(B) (k x n).
public struct GEMMShape: Hashable, Sendable, CustomStringConvertible {
    public let m: Int, n: Int, k: Int
    public let transA: Bool, transB: Bool
    /// Whether the product ran in bfloat16.
    public let bfloat16: Bool
    public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
    public var description: String {
        "\(m) x \(k) x \(n)\(transA ? " A^T" : "")\(transB ? " B^T" : "")\(bfloat16 ? " bf16" : "")"
    }
}
