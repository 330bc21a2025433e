import ArgumentParser
import BLASBinding
import Engine
import Foundation
import Layers
import Methods
import Models
import Training

/// Profiles one training step per (method, resolution): time per op category for forward and backward,
/// achieved GFLOP/s against the SGEMM peak measured in the same process, and memory. Each configuration runs in
/// a fresh child process so that its peak resident memory is its own.
struct ProfileBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Profile a training step: time per op category (forward/backward), GFLOP/s vs SGEMM peak, memory.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Model name.") var model = "dinov2-s14"
    @Option(parsing: .upToNextOption, help: "Methods to profile (SHiRA at density 0.02 unless --density is given).")
    var methods: [String] = ["lora", "shira"]
    @Option(parsing: .upToNextOption, help: "Resolutions in pixels.") var resolutions: [Int] = [112, 224]
    @Option(help: "Batch size.") var batch = 32
    @Option(help: "Steps timed without the profiler (median reported) and steps profiled (summed).") var repeats = 3
    @Flag(help: "Print the time of every op name, not only the categories.") var perOp = false
    @Flag(help: "Print calls, time and GFLOP/s of every GEMM shape.") var perGemm = false
    @Flag(help: "Run every configuration in this process (no fresh process per configuration).") var inProcess = false
    @Option(help: "GEMM precision: fp32, or bf16 (the linear layers' forward, input-gradient and weight-gradient products and attention's products in bfloat16; also PEFT_GEMM=bf16).")
    var precision: String?
    @OptionGroup var methodFlags: MethodFlags

    func run() throws {
        try global.announce()
        var context = ExecutionContext.current
        if let precision {
            guard let value = GEMMPrecision(rawValue: precision) else { throw ValidationError("--precision must be fp32 or bf16") }
            context.precision = value
        }
        try context.run(profileAll)
    }

    func profileAll() throws {
        if GEMMSettings.precision == .bfloat16 && !GEMMSettings.bfloat16Supported {
            printError("bf16 requested but this CPU has no AVX-512 BF16: using fp32")
        }
        var summaries: [String] = []
        for resolution in resolutions {
            for method in methods {
                if inProcess || (methods.count == 1 && resolutions.count == 1) {
                    summaries.append(try profile(method: method, resolution: resolution))
                } else {
                    summaries += try runChild(method: method, resolution: resolution)
                }
            }
        }
        print("")
        print("### Summary (\(model), batch \(batch))")
        print("")
        print(Self.summaryHeader)
        print("|" + String(repeating: "---|", count: Self.summaryHeader.filter { $0 == "|" }.count - 1))
        for line in summaries { print(line) }
    }

    static let summaryHeader = "| method | px | s/step | GFLOP/step | GFLOP/s | SGEMM peak | % of peak "
        + "| % of peak per CPU-second | GEMM-only GFLOP/s | activations kept MB | minimum MB | peak tensors MB | VmHWM MB |"

    /// Runs this command again for one configuration in a child process; returns its summary rows.
    func runChild(method: String, resolution: Int) throws -> [String] {
        var arguments = Array(CommandLine.arguments.dropFirst())
        // Replace the lists of methods and resolutions by the single configuration.
        func dropList(_ flag: String) {
            guard let index = arguments.firstIndex(of: flag) else { return }
            var end = index + 1
            while end < arguments.count && !arguments[end].hasPrefix("--") { end += 1 }
            arguments.removeSubrange(index..<end)
        }
        dropList("--methods"); dropList("--resolutions")
        arguments += ["--methods", method, "--resolutions", String(resolution)]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ValidationError("profile of \(method) at \(resolution) px failed (exit \(process.terminationStatus))")
        }
        // The child prints its tables, then its own summary; keep the tables and collect the summary rows.
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        guard let summaryStart = lines.firstIndex(where: { $0.hasPrefix("### Summary") }) else {
            print(output); return []
        }
        print(lines[..<summaryStart].joined(separator: "\n"))
        var rows: [String] = []
        for line in lines[summaryStart...] where line.hasPrefix("| ") && !line.hasPrefix("| method") && !rows.contains(String(line)) {
            rows.append(String(line))
        }
        return rows
    }

    func profile(method name: String, resolution: Int) throws -> String {
        // The SGEMM peak, also per CPU-second of this process: on a shared machine the ratio of work per
        // CPU-second (step vs SGEMM) is far less sensitive to other processes than wall-clock rates.
        let peakCPUStart = Self.cpuSeconds()
        let peakFLOPs = 2.0 * 2048 * 2048 * 2048 * 8
        let peak = sgemmRate(m: 2048, n: 2048, k: 2048, repeats: 7)
        let peakPerCPUSecond = peakFLOPs / (Self.cpuSeconds() - peakCPUStart)
        let vision = try PretrainedModels.vision(named: model, progress: printError)
        let classifier = ImageClassifier(vision: vision, classes: 10)
        var config = try methodFlags.config(for: name, seed: 0, strict: false)
        if name == "shira" && methodFlags.density == nil && !methodFlags.assignments.contains(where: { $0.hasPrefix("density=") }) {
            config["density"] = .real(0.02)
        }
        let method = try MethodRegistry.method(named: name, config: config)
        try method.apply(to: classifier)
        let optimizer = AdamW(parameters: classifier.trainableParameters)
        var generator = RandomGenerator(seed: 11)
        let pixels = Tensor.randomNormal([batch, 3, resolution, resolution], generator: &generator)
        let labels = (0..<batch).map { $0 % 10 }
        let preprocessor = ImagePreprocessor(configuration: vision.configuration, resolution: resolution)
        let greyImages = (0..<batch).map { _ in (0..<(28 * 28)).map { _ in generator.nextUniform() } }

        var keptBytes = 0
        var forwardSeconds = 0.0, backwardSeconds = 0.0
        func step(measureMemory: Bool = false) {
            Profiler.active?.beginForward()
            let forwardStart = DispatchTime.now().uptimeNanoseconds
            let before = TensorMemory.liveBytes
            let loss = ModelMode.training(stepSeed: 0) {
                crossEntropy(classifier.logits(.images(pixels)), labels: labels, smoothing: 0.1)
            }
            let backwardStart = DispatchTime.now().uptimeNanoseconds
            if measureMemory {
                keptBytes = TensorMemory.liveBytes - before
            }
            loss.backward()
            let backwardEnd = DispatchTime.now().uptimeNanoseconds
            Profiler.measure("optimizer (AdamW, clipping)") { optimizer.update(learningRate: 1e-5, clipNorm: 1) }
            forwardSeconds += Double(backwardStart - forwardStart) / 1e9
            backwardSeconds += Double(backwardEnd - backwardStart) / 1e9
        }

        // Unprofiled steps: the reference time per step, tensor-memory peak, resident-memory peak.
        step()
        TensorMemory.resetPeak()
        let baseLive = TensorMemory.liveBytes
        let stepCPUStart = Self.cpuSeconds()
        let seconds = medianSeconds(repeats: repeats, warmup: 0) { step() }
        let stepCPUSeconds = (Self.cpuSeconds() - stepCPUStart) / Double(repeats)
        let peakTensors = TensorMemory.peakLiveBytes - baseLive
        step(measureMemory: true)

        // Profiled steps.
        forwardSeconds = 0; backwardSeconds = 0
        let profile = Profile()
        var profiledTotal = 0.0
        ExecutionContext.with({ $0.profile = profile }) {
            for _ in 0..<repeats {
                let start = DispatchTime.now().uptimeNanoseconds
                step()
                profiledTotal += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                // Batch preparation (resize, RGB, normalise), done by the trainer on a background thread.
                _ = profile.measure("data (batch preparation, background in training)") {
                    preprocessor.batch(greyImages, rows: 28, columns: 28)
                }
            }
        }
        let runs = Double(repeats)
        let flops = (profile.gemmOperations + profile.attentionOperations) / runs

        // Categories.
        var rows: [String: (forward: Double, backward: Double)] = [:]
        for (op, t) in profile.forward { rows[Profiler.category(of: op), default: (0, 0)].forward += t / runs }
        for (op, t) in profile.backward { rows[Profiler.category(of: op), default: (0, 0)].backward += t / runs }
        let opForward = profile.forward.values.reduce(0, +) / runs
        let opBackward = profile.backward.values.reduce(0, +) / runs
        rows["autograd (graph walk, freeing)", default: (0, 0)].backward += backwardSeconds / runs - opBackward
        let unaccountedForward = forwardSeconds / runs - opForward
        if unaccountedForward > 0.0005 { rows["forward outside ops", default: (0, 0)].forward += unaccountedForward }
        for (label, t) in profile.extra { rows[label, default: (0, 0)].forward += t / runs }
        let stepSeconds = profiledTotal / runs
        let gemmSeconds = rows["GEMM (linear, matmul, SHiRA)"].map { $0.forward + $0.backward } ?? 0

        print("### \(name) at \(resolution) px, batch \(batch), GEMM precision \(GEMMSettings.precision.rawValue)")
        print("")
        print("Step \(String(format: "%.3f", seconds)) s unprofiled (median of \(repeats)), "
              + "\(String(format: "%.3f", stepSeconds)) s profiled; forward \(String(format: "%.0f", forwardSeconds / runs * 1000)) ms, "
              + "backward \(String(format: "%.0f", backwardSeconds / runs * 1000)) ms.")
        print("")
        print("| category | forward ms | backward ms | total ms | share of step |")
        print("|---|---|---|---|---|")
        let ordered = rows.sorted { ($0.value.forward + $0.value.backward) > ($1.value.forward + $1.value.backward) }
        for (category, t) in ordered where category.hasPrefix("data") == false {
            let total = t.forward + t.backward
            print("| \(category) | \(ms(t.forward)) | \(ms(t.backward)) | \(ms(total)) | \(String(format: "%.1f%%", 100 * total / stepSeconds)) |")
        }
        print("| **step** | \(ms(forwardSeconds / runs)) | \(ms(backwardSeconds / runs)) | \(ms(stepSeconds)) | 100% |")
        if let data = rows.first(where: { $0.key.hasPrefix("data") }) {
            print("| \(data.key) | \(ms(data.value.forward)) | | | (not in the step) |")
        }
        if perOp {
            print("")
            print("| op | forward ms | backward ms |")
            print("|---|---|---|")
            let names = Set(profile.forward.keys).union(profile.backward.keys).sorted {
                (profile.forward[$0] ?? 0) + (profile.backward[$0] ?? 0) > (profile.forward[$1] ?? 0) + (profile.backward[$1] ?? 0)
            }
            for op in names {
                print("| \(op) | \(ms((profile.forward[op] ?? 0) / runs)) | \(ms((profile.backward[op] ?? 0) / runs)) |")
            }
        }
        if perGemm {
            print("")
            print("| GEMM shape (m x k x n) | calls/step | ms/step | GFLOP/s |")
            print("|---|---|---|---|")
            for (shape, stat) in profile.gemmShapes.sorted(by: { $0.value.seconds > $1.value.seconds }) {
                print("| \(shape) | \(String(format: "%.0f", Double(stat.calls) / runs)) | \(ms(stat.seconds / runs)) "
                      + "| \(String(format: "%.0f", shape.flops * Double(stat.calls) / stat.seconds / 1e9)) |")
            }
        }
        print("")
        print("Activation memory kept for backward (tensor bytes alive after the forward, minus before): "
              + "\(mb(keptBytes)) MB; peak tensor memory during a step \(mb(peakTensors)) MB above the model's.")
        print("")

        let minimum = minimumActivationBytes(method: name, configuration: vision.configuration, resolution: resolution,
                                             rank: (method.config as? LoRA.Config)?.r ?? 0)
        let rate = flops / seconds / 1e9
        let residentPeak = Self.statusKilobytes("VmHWM") / 1024
        print("### Summary")
        print("")
        let summary = "| \(name) | \(resolution) | \(String(format: "%.3f", seconds)) | \(String(format: "%.1f", flops / 1e9)) "
            + "| \(String(format: "%.0f", rate)) | \(String(format: "%.0f", peak)) | \(String(format: "%.0f%%", 100 * rate / peak)) "
            + "| \(String(format: "%.0f%%", 100 * (flops / stepCPUSeconds) / peakPerCPUSecond)) "
            + "| \(String(format: "%.0f", profile.gemmOperations / runs / gemmSeconds / 1e9)) "
            + "| \(mb(keptBytes)) | \(mb(minimum)) | \(mb(peakTensors)) | \(residentPeak) |"
        print(summary)
        return summary
    }

    /// Activation bytes that backward needs at least (batch of images, float32), with the engine's backward
    /// formulas: per block the LayerNorm inputs (x, h), q, k, v, the attention probabilities (unless attention
    /// recomputes them: `AttentionSettings.recomputeAboveTokens`), the GELU input, and the inputs of the layers
    /// whose weights train (LoRA: the q/v input and the rank-r intermediate; SHiRA on all linears: the inputs of
    /// all six layers).
    func minimumActivationBytes(method: String, configuration c: VisionTransformerConfiguration, resolution: Int,
                                rank: Int) -> Int {
        let grid = resolution / c.patchSize
        let tokens = grid * grid + 1
        let d = c.width, hidden = c.mlpDimension
        let probabilities = tokens > AttentionSettings.recomputeAboveTokens ? 0 : c.heads * tokens
        var perToken = 2 * d + 3 * d + probabilities + hidden
        switch method {
        case "lora": perToken += d + 2 * rank
        case "shira": perToken += 3 * d + hidden          // inputs of q/k/v (shared), attention output, fc1, fc2
        default: break
        }
        return (perToken * c.depth + d) * tokens * batch * MemoryLayout<Float>.size
    }

    /// User + system CPU seconds of this process (all threads).
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    static func statusKilobytes(_ field: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            return Int(line.split(separator: " ").dropFirst().first(where: { Int($0) != nil }) ?? "0") ?? 0
        }
        return 0
    }
}

private func ms(_ seconds: Double) -> String { String(format: "%.0f", seconds * 1000) }
private func mb(_ bytes: Int) -> String { String(format: "%.0f", Double(bytes) / 1_048_576) }
