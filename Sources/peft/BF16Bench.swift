import ArgumentParser
import Engine
import Foundation

/// SGEMM against the bfloat16 GEMM (AVX-512 BF16) on the ViT shapes, measured alternately in one process.
struct BF16GEMMBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm-bf16", abstract: "GFLOP/s of float32 SGEMM vs the bfloat16 GEMM on transformer shapes.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Timed repeats per shape and precision (median reported).") var repeats = 7

    func run() throws {
        try global.announce()
        guard GEMMSettings.bfloat16Supported else {
            print("This CPU has no AVX-512 BF16; nothing to compare.")
            return
        }
        print("| shape (m x k x n) | op | fp32 SGEMM GFLOP/s | bf16 GEMM GFLOP/s | bf16 / fp32 |")
        print("|---|---|---|---|---|")
        // (m, k, n, transB, what): transB = forward x W^T; no transB = input gradient dy W.
        let shapes: [(Int, Int, Int, Bool, String)] = [
            (32 * 65, 384, 1152, true, "112px qkv forward"),
            (32 * 65, 384, 1536, true, "112px fc1 forward"),
            (32 * 65, 1536, 384, true, "112px fc2 forward"),
            (32 * 65, 1536, 384, false, "112px fc1 input gradient"),
            (32 * 257, 384, 1536, true, "224px fc1 forward"),
            (32 * 257, 1536, 384, true, "224px fc2 forward"),
            (32 * 257, 1536, 384, false, "224px fc1 input gradient"),
            (2048, 2048, 2048, true, "square"),
        ]
        var generator = RandomGenerator(seed: 4)
        for (m, k, n, transB, what) in shapes {
            let a = Tensor.randomNormal([m, k], generator: &generator)
            let b = Tensor.randomNormal(transB ? [n, k] : [k, n], generator: &generator)
            let c = Tensor(zeros: [m, n])
            let ldb = transB ? k : n
            var fp32: [Double] = [], bf16: [Double] = []
            for round in 0...repeats {
                for precision in [GEMMPrecision.float32, .bfloat16] {
                    let start = DispatchTime.now().uptimeNanoseconds
                    ExecutionContext.with({ $0.precision = precision }) {
                        gemm(transA: false, transB: transB, m: m, n: n, k: k, a: a.data, lda: k, b: b.data, ldb: ldb,
                             c: c.data, ldc: n, reducedPrecision: true)
                    }
                    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    if round > 0 { (precision == .float32 ? { fp32.append(seconds) } : { bf16.append(seconds) })() }
                }
            }
            let flops = 2 * Double(m) * Double(n) * Double(k)
            let f = flops / fp32.sorted()[fp32.count / 2] / 1e9, h = flops / bf16.sorted()[bf16.count / 2] / 1e9
            print("| \(m) x \(k) x \(n) | \(what) | \(String(format: "%.0f", f)) | \(String(format: "%.0f", h)) | \(String(format: "%.2fx", h / f)) |")
        }
    }
}
