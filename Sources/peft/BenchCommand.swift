import ArgumentParser
import BLASBinding
import Engine
import Foundation
import Models

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Measure speed: SGEMM peak and model forward throughput.",
        subcommands: [SGEMMBench.self, ForwardBench.self, OpsBench.self, StepBench.self, SwitchBench.self, SuiteBench.self, ProfileBench.self, BF16GEMMBench.self, LanguageModelBench.self, ServeBench.self, AllreduceBench.self])
}

/// Seconds taken by `body`, median of `repeats` runs after `warmup` runs.
func medianSeconds(repeats: Int, warmup: Int = 1, _ body: () -> Void) -> Double {
    for _ in 0..<warmup { body() }
    var times: [Double] = []
    for _ in 0..<repeats {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    return times.sorted()[times.count / 2]
}

/// Measured SGEMM rate for an m x k by k x n product, in GFLOP/s.
func sgemmRate(m: Int, n: Int, k: Int, transB: Bool = true, repeats: Int = 5) -> Double {
    var generator = RandomGenerator(seed: 1)
    let a = Tensor.randomNormal([m, k], generator: &generator)
    let b = Tensor.randomNormal(transB ? [n, k] : [k, n], generator: &generator)
    let c = Tensor(zeros: [m, n])
    let seconds = medianSeconds(repeats: repeats) {
        gemm(transA: false, transB: transB, m: m, n: n, k: k, a: a.data, lda: k,
                              b: b.data, ldb: transB ? k : n, c: c.data, ldc: n)
    }
    return 2 * Double(m) * Double(n) * Double(k) / seconds / 1e9
}

struct SGEMMBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sgemm", abstract: "SGEMM GFLOP/s on transformer shapes.")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try global.announce()
        print("OpenBLAS core: \(OpenBLAS.shared.coreName) (\(OpenBLAS.shared.coreTypeSource)), threads \(OpenBLAS.shared.threadCount)")
        print("library: \(OpenBLAS.shared.libraryName)")
        let peak = MachinePeak.fmaGFLOPS()
        if let peak {
            print("FMA peak (\(peak.kernels), \(Parallel.workerCount) cores, measured): \(String(format: "%.0f", peak.gflops)) GFLOP/s")
        }
        print("| shape (m x k x n) | what | GFLOP/s | % of FMA peak |")
        print("|---|---|---|---|")
        let shapes: [(Int, Int, Int, String)] = [
            (2048, 2048, 2048, "square"),
            (32 * 65, 384, 1152, "ViT-S 112px tokens x width x qkv"),
            (32 * 65, 384, 1536, "ViT-S 112px fc1"),
            (32 * 257, 384, 1536, "ViT-S 224px fc1"),
            (32 * 257, 1536, 384, "ViT-S 224px fc2"),
        ]
        for (m, k, n, what) in shapes {
            let rate = sgemmRate(m: m, n: n, k: k)
            let share = peak.map { String(format: "%.0f%%", 100 * rate / $0.gflops) } ?? "—"
            print("| \(m) x \(k) x \(n) | \(what) | \(String(format: "%.0f", rate)) | \(share) |")
        }
    }
}

struct ForwardBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward", abstract: "Forward-pass throughput (images/s) of a vision model.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Model name.") var model = "dinov2-s14"
    @Option(help: "Batch size.") var batch = 32
    @Option(parsing: .upToNextOption, help: "Resolutions in pixels.") var resolutions: [Int] = [112, 224]
    @Option(help: "Timed repeats (median reported).") var repeats = 5

    func run() throws {
        try global.announce()
        let network = try PretrainedModels.vision(named: model, progress: printError)
        let peak = sgemmRate(m: 2048, n: 2048, k: 2048)
        print("SGEMM peak (2048^3): \(String(format: "%.0f", peak)) GFLOP/s; OpenBLAS core \(OpenBLAS.shared.coreName)")
        print("| model | resolution | batch | ms/batch | images/s | GFLOP/s | % of SGEMM peak |")
        print("|---|---|---|---|---|---|---|")
        var generator = RandomGenerator(seed: 7)
        for resolution in resolutions {
            let pixels = Tensor.randomNormal([batch, 3, resolution, resolution], generator: &generator)
            let seconds = medianSeconds(repeats: repeats) {
                _ = Autograd.withoutGrad { network.features(pixels) }
            }
            let flops = network.configuration.forwardFLOPs(resolution: resolution) * Double(batch)
            let rate = flops / seconds / 1e9
            print("| \(model) | \(resolution) | \(batch) | \(String(format: "%.0f", seconds * 1000)) | \(String(format: "%.1f", Double(batch) / seconds)) | \(String(format: "%.0f", rate)) | \(String(format: "%.0f", 100 * rate / peak))% |")
        }
    }
}

struct OpsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ops", abstract: "Time each op at ViT-S shapes (forward and forward+backward).")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Batch size.") var batch = 32
    @Option(help: "Resolution in pixels (tokens = (r/14)^2 + 1).") var resolution = 224

    func run() throws {
        try global.announce()
        var generator = RandomGenerator(seed: 3)
        let tokens = (resolution / 14) * (resolution / 14) + 1, width = 384
        let x = Tensor.randomNormal([batch, tokens, width], generator: &generator)
        let w = Tensor.randomNormal([1536, width], std: 0.02, generator: &generator)
        let b = Tensor(zeros: [1536])
        let q = Tensor.randomNormal([batch, tokens, width], generator: &generator)
        let k = Tensor.randomNormal([batch, tokens, width], generator: &generator)
        let wide = Tensor.randomNormal([batch, tokens, 1536], generator: &generator)
        let norm = Tensor(shape: [width], repeating: 1), shift = Tensor(zeros: [width])
        let cases: [(String, [Tensor], () -> Tensor)] = [
            ("linear 384->1536", [x], { linear(x, w, b) }),
            ("attention 6 heads", [q, k, x], { scaledDotProductAttention(query: q, key: k, value: x, heads: 6) }),
            ("layerNorm 384", [x], { layerNorm(x, weight: norm, bias: shift, eps: 1e-6) }),
            ("gelu x1536", [wide], { gelu(wide) }),
            ("add", [x, q], { x + q }),
            ("multiply by [384]", [x], { x * norm }),
        ]
        print("| op (B=\(batch), T=\(tokens)) | forward ms | forward+backward ms |")
        print("|---|---|---|")
        for (name, inputs, body) in cases {
            let forward = medianSeconds(repeats: 5) { _ = Autograd.withoutGrad { body() } }
            for input in inputs { input.requiresGrad = true }
            let both = medianSeconds(repeats: 5) {
                let out = body()
                out.backward(gradient: Tensor(shape: out.shape, repeating: 1))
                for input in inputs { input.grad = nil }
            }
            for input in inputs { input.requiresGrad = false }
            print("| \(name) | \(String(format: "%.1f", forward * 1000)) | \(String(format: "%.1f", both * 1000)) |")
        }
    }
}
