import Foundation
import VectorKernels

/// The float32 arithmetic limit of the machine in hand, measured rather than looked up: every core runs
/// independent fused multiply-adds on full registers of the widest kernel family the CPU supports, which is
/// (FMA units x lanes x 2 FLOPs x clock) per core, summed over the cores, at the clock the cores actually hold
/// under load. Benchmarks report GEMM rates as a share of it.
public enum MachinePeak {
    /// Measured float32 FMA throughput in GFLOP/s over `Parallel.workerCount` cores, and the family it was
    /// measured with (best of five timings of about `seconds` / 5 each); nil when only the portable family runs (no
    /// FMA kernel to time).
    public static func fmaGFLOPS(seconds: Double = 0.3) -> (gflops: Double, kernels: KernelSet)? {
        let set = KernelSet.best
        let loop: (Int) -> Float, flopsPerRound: Double
        switch set {
        case .avx512: loop = { peft_fma_loop_avx512($0) }; flopsPerRound = 12 * 16 * 2
        case .avx2: loop = { peft_fma_loop_avx2($0) }; flopsPerRound = 12 * 8 * 2
        case .portable: return nil
        }
        // Calibrate on one core to about a tenth of the budget, then time all cores together.
        var rounds = 1 << 16
        while true {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = loop(rounds)
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if elapsed > seconds / 10 || rounds > 1 << 34 { rounds = Int(Double(rounds) * seconds / max(elapsed, 1e-6)); break }
            rounds *= 4
        }
        // The best of five timings: the clock settles under load, and a shared machine's other tenants only
        // ever slow a timing down.
        let workers = Parallel.workerCount
        let sinks = UnsafeMutableBufferPointer<Float>.allocate(capacity: workers)
        defer { sinks.deallocate() }
        var best = 0.0
        for _ in 0..<5 {
            let start = DispatchTime.now().uptimeNanoseconds
            DispatchQueueBridge.concurrentPerform(workers) { worker in sinks[worker] = loop(rounds / 5) }
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            best = max(best, Double(workers) * Double(rounds / 5) * flopsPerRound / elapsed / 1e9)
        }
        return (best, set)
    }
}
