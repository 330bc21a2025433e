import Foundation

/// Opt-in wall-clock profile of the engine's ops, split into forward and backward.
///
/// When `isEnabled` is false (the default) the cost is one flag test per op. When it is on:
/// - forward: every op ends by calling `recording` (whether or not it attaches a backward), so the time since the
///   previous op finished (or since `beginForward()`) is charged to the op that just finished;
/// - backward: each node's backward closure is timed on its own by `Tensor.backward`; the rest of `backward`
///   (graph sort, freeing gradients) is charged to "autograd";
/// - `gemm` counts the floating-point operations it executes (2 m n k), and the attention op its own.
/// Only the thread that called `start()` is profiled; ops run from other threads are ignored.
/// Use it from one thread at a time (benchmarks), not in concurrent code.
public enum Profiler {
    nonisolated(unsafe) static var enabledFlag = false
    nonisolated(unsafe) private static var lastMark: UInt64 = 0
    nonisolated(unsafe) private static var forwardSeconds: [String: Double] = [:]
    nonisolated(unsafe) private static var backwardSeconds: [String: Double] = [:]
    nonisolated(unsafe) private static var extraSeconds: [String: Double] = [:]
    nonisolated(unsafe) private static var gemmFLOPs: Double = 0
    nonisolated(unsafe) private static var attentionFLOPs: Double = 0
    nonisolated(unsafe) private static var profiledThread: pthread_t?
    nonisolated(unsafe) private static var gemmShapeStats: [GEMMShape: (calls: Int, seconds: Double)] = [:]
    private static let lock = NSLock()

    /// Whether ops are being timed.
    public static var isEnabled: Bool { enabledFlag }

    /// Clears all counters and turns the profiler on for the calling thread.
    public static func start() {
        forwardSeconds = [:]; backwardSeconds = [:]; extraSeconds = [:]
        gemmFLOPs = 0; attentionFLOPs = 0; gemmShapeStats = [:]
        profiledThread = pthread_self()
        enabledFlag = true
        lastMark = now()
    }

    /// Turns the profiler off (the counters stay readable).
    public static func stop() { enabledFlag = false; profiledThread = nil }

    @inline(__always) static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    @inline(__always) static var onProfiledThread: Bool {
        guard let thread = profiledThread else { return false }
        return pthread_equal(thread, pthread_self()) != 0
    }

    /// Marks the start of a forward pass: time before this point is not charged to the first op.
    public static func beginForward() { if enabledFlag { lastMark = now() } }

    /// Called by `recording`: charges the time since the last mark to the forward of `name`.
    static func forwardOpFinished(_ name: String) {
        guard onProfiledThread else { return }
        let t = now()
        forwardSeconds[name, default: 0] += Double(t &- lastMark) / 1e9
        lastMark = t
    }

    /// Called by `Tensor.backward` for each node.
    static func backwardOp(_ name: String, seconds: Double) {
        backwardSeconds[name, default: 0] += seconds
    }

    /// Adds time measured outside the engine's ops (optimizer, data, autograd bookkeeping) under `label`.
    public static func add(_ label: String, seconds: Double) {
        extraSeconds[label, default: 0] += seconds
    }

    /// Times `body` and charges it to `label` (when enabled).
    public static func measure<T>(_ label: String, _ body: () throws -> T) rethrows -> T {
        guard enabledFlag else { return try body() }
        let start = now()
        let result = try body()
        add(label, seconds: Double(now() &- start) / 1e9)
        if onProfiledThread { lastMark = now() }
        return result
    }

    static func countGEMM(m: Int, n: Int, k: Int) {
        lock.lock(); gemmFLOPs += 2 * Double(m) * Double(n) * Double(k); lock.unlock()
    }

    static func countAttention(_ flops: Double) {
        lock.lock(); attentionFLOPs += flops; lock.unlock()
    }

    /// Records one `gemm` call of `shape` that took `seconds` (profiled thread only).
    static func gemmFinished(_ shape: GEMMShape, seconds: Double) {
        guard onProfiledThread else { return }
        let old = gemmShapeStats[shape] ?? (0, 0)
        gemmShapeStats[shape] = (old.calls + 1, old.seconds + seconds)
    }

    /// Calls and seconds per GEMM shape so far (products run by `gemm` on the profiled thread).
    public static var gemmShapes: [GEMMShape: (calls: Int, seconds: Double)] { gemmShapeStats }

    /// Seconds per op name in forward passes so far.
    public static var forward: [String: Double] { forwardSeconds }
    /// Seconds per op name in backward passes so far.
    public static var backward: [String: Double] { backwardSeconds }
    /// Seconds per label added with `add` / `measure`.
    public static var extra: [String: Double] { extraSeconds }
    /// Floating-point operations executed by `gemm` (linear layers, matmul) so far.
    public static var gemmOperations: Double { gemmFLOPs }
    /// Floating-point operations of the matrix products inside fused attention so far.
    public static var attentionOperations: Double { attentionFLOPs }

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
