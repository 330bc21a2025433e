import ArgumentParser
import Foundation
import Engine
import Methods
import Serving
import Training

/// `peft bench serve`: switching cost inside the adapter server, then requests/s and latency of a real `peft serve`
/// process on loopback under a bounded load generator (random adapter per request), then optionally a memory soak.
struct ServeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Benchmark serving: switch cost vs forward, HTTP requests/s and p50/p95/p99 for 1/10/100 adapters, RSS soak.")
    @OptionGroup var global: GlobalOptions
    @Option(parsing: .upToNextOption, help: "Models for the switch-cost table.") var switchModels: [String] = ["dinov2-s14", "vit-b16-random"]
    @Option(help: "Model for the HTTP load table and the soak.") var loadModel = "dinov2-s14"
    @Option(parsing: .unconditional, help: "Image side in pixels of every adapter.") var resolution = 224
    @Option(parsing: .upToNextOption, help: "Adapter counts for the load table.") var adapterCounts: [Int] = [1, 10, 100]
    @Option(parsing: .unconditional, help: "Seconds of load per row of the load table (wrk).") var seconds = 20
    @Option(parsing: .unconditional, help: "Concurrent client connections.") var concurrency = 8
    @Option(parsing: .unconditional, help: "Switches timed per adapter kind (switch table).") var switches = 20
    @Option(parsing: .unconditional, help: "Seconds of random-adapter load while sampling the server's RSS (0: no soak).") var soakSeconds = 0
    @Flag(help: "Skip the switch-cost table.") var skipSwitch = false
    @Flag(help: "Skip the HTTP load table.") var skipLoad = false
    @Option(help: "Folder for the synthetic adapters (default: a temporary folder, removed afterwards).") var work: String?

    /// The adapter kinds compared: SHiRA at 1% and 2% and LoRA r=8, all on every linear layer.
    static let kinds: [(label: String, method: String, config: ConfigObject)] = [
        ("SHiRA 1%", "shira", ["density": 0.01, "target_modules": "all-linear"]),
        ("SHiRA 2%", "shira", ["density": 0.02, "target_modules": "all-linear"]),
        ("LoRA r=8", "lora", ["r": 8, "target_modules": "all-linear"]),
    ]

    func run() throws {
        let box = CommandBox(command: self)
        try runBlocking { try await box.command.runAsync() }
    }

    func runAsync() async throws {
        try global.announce()
        let root: URL
        if let work { root = URL(fileURLWithPath: work) } else {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("peft-bench-serve-\(UUID().uuidString)")
        }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { if work == nil { try? FileManager.default.removeItem(at: root) } }
        if !skipSwitch { try await switchTable(root: root) }
        if !skipLoad || soakSeconds > 0 { try await loadTables(root: root) }
    }

    // MARK: Switch cost

    func switchTable(root: URL) async throws {
        emit("Switch cost inside the server (fused; detach the old adapter and attach the new one, median of \(switches)) against one batch-1 forward, \(resolution) px:\n")
        emit("| model | adapter (all linear layers) | adapter tensors | switch ms | batch-1 forward ms | switch / forward | LoRA switch / this |")
        emit("|---|---|---|---|---|---|---|")
        for model in switchModels {
            let folder = root.appendingPathComponent("switch-\(model)")
            var loraSwitch: Double?
            var rows: [(String, Int, Double, Double)] = []
            for kind in Self.kinds {
                let entries = try SyntheticAdapters.write(model: model, method: kind.method, config: kind.config, count: 2,
                                                          resolution: resolution, namePrefix: "\(kind.method)-\(rows.count)",
                                                          to: folder, progress: printError)
                var options = ServingOptions()
                options.policy = .fused
                let server = try AdapterServer(model: model, adapters: entries, options: options)
                let image = ServingInput.image(InputImage(name: "probe", rows: resolution, columns: resolution,
                                                          grey: (0..<(resolution * resolution)).map { Float($0 % 251) / 251 }))
                _ = try await server.classify(adapter: entries[0].name, inputs: [image])
                _ = try await server.classify(adapter: entries[1].name, inputs: [image])
                // Same adapter twice in a row: forward only; alternating: one switch per request.
                var forward: [Double] = [], switchTimes: [Double] = []
                for index in 0..<switches {
                    var before = server.currentStatistics()
                    _ = try await server.classify(adapter: entries[index % 2].name, inputs: [image])
                    var after = server.currentStatistics()
                    if after.switches > before.switches { switchTimes.append(after.switchSeconds - before.switchSeconds) }
                    before = after
                    _ = try await server.classify(adapter: entries[index % 2].name, inputs: [image])
                    after = server.currentStatistics()
                    forward.append(after.forwardSeconds - before.forwardSeconds)
                }
                let values = server.adapterStatuses().first?.bytes ?? 0
                await server.shutdown()
                let switchMedian = median(switchTimes), forwardMedian = median(forward)
                if kind.method == "lora" { loraSwitch = switchMedian }
                rows.append((kind.label, values, switchMedian, forwardMedian))
            }
            for (label, bytes, switchSeconds, forwardSeconds) in rows {
                let ratio = loraSwitch.map { $0 / switchSeconds }
                emit("| \(model) | \(label) | \(bytes / 1024) KiB | \(format(switchSeconds * 1000, 3)) | \(format(forwardSeconds * 1000, 1)) | "
                      + "\(format(100 * switchSeconds / forwardSeconds, 2))% | \(ratio.map { format($0, 1) + "x" } ?? "-") |")
            }
            try? FileManager.default.removeItem(at: folder)
        }
        emit("")
    }

    // MARK: HTTP load

    func loadTables(root: URL) async throws {
        let most = max(adapterCounts.max() ?? 1, 1)
        let folder = root.appendingPathComponent("load")
        var written = 0
        for (method, config) in [("shira", ["density": 0.01, "target_modules": "all-linear"] as ConfigObject),
                                 ("lora", ["r": 8, "target_modules": "all-linear"] as ConfigObject)] {
            let existing = (try? FileManager.default.contentsOfDirectory(atPath: folder.path))?.filter { $0.hasPrefix(method + "-") }.count ?? 0
            if existing < most {
                printError("writing \(most) \(method) adapters for \(loadModel)")
                _ = try SyntheticAdapters.write(model: loadModel, method: method, config: config, count: most,
                                                resolution: resolution, to: folder, progress: printError)
                written += most
            }
        }
        var generator = RandomGenerator(seed: 11)
        let rgb = (0..<(resolution * resolution * 3)).map { _ in UInt8(Int(generator.next() % 256)) }
        let image = Data(try PNGImage.encode(width: resolution, height: resolution, rgb: rgb)).base64EncodedString()
        if !skipLoad {
            let wrk = try Wrk()
            emit("HTTP on loopback: `peft serve --model \(loadModel)` in its own process; load from `wrk -t1 -c\(concurrency) -d\(seconds)s` "
                  + "(\(wrk.version)) with a Lua script drawing the adapter of each request at random; one \(resolution) px PNG "
                  + "(\(image.count / 1024) KiB of base64) per request; every adapter loaded before timing:\n")
            emit("| adapters | served as | requests/s | p50 ms | p95 ms | p99 ms | switches per request | examples per batch | errors |")
            emit("|---|---|---|---|---|---|---|---|---|")
            for (label, method, policy) in [("SHiRA 1% fused", "shira", "fused"), ("LoRA r=8 fused", "lora", "fused"),
                                            ("LoRA r=8 unfused", "lora", "unfused"), ("LoRA r=8 auto", "lora", "auto")] {
                let process = try ServeProcess(model: loadModel, adapters: folder, policy: policy)
                defer { process.stop() }
                for count in adapterCounts {
                    let names = (0..<count).map { "\(method)-\($0)" }
                    let client = LoadClient(port: process.port, image: image)
                    for name in names { _ = try client.classify(name) }  // load every adapter first
                    let before = try client.statistics()
                    let result = try wrk.run(port: process.port, names: names, image: image, connections: concurrency,
                                             seconds: seconds, seed: count)
                    let after = try client.statistics()
                    let switchesPerRequest = Double(after.switches - before.switches) / Double(max(1, after.requests - before.requests))
                    let perBatch = Double(after.examples - before.examples) / Double(max(1, after.batches - before.batches))
                    emit("| \(count) | \(label) | \(format(result.requestsPerSecond, 1)) | \(format(result.p50 * 1000, 1)) | "
                          + "\(format(result.p95 * 1000, 1)) | \(format(result.p99 * 1000, 1)) | "
                          + "\(format(switchesPerRequest, 2)) | \(format(perBatch, 1)) | \(result.errors) |")
                }
                let exit = process.stop()
                if exit != 0 { printError("warning: peft serve exited with status \(exit) after SIGTERM") }
            }
            emit("")
        }
        if soakSeconds > 0 { try await soak(folder: folder, image: image, count: most) }
    }

    /// Random-adapter load for `soakSeconds` against a server limited to a quarter of the adapters resident (so it
    /// loads and evicts all along), sampling its resident set size.
    func soak(folder: URL, image: String, count: Int) async throws {
        let resident = max(1, count / 4)
        let process = try ServeProcess(model: loadModel, adapters: folder, policy: "auto", extra: ["--max-resident", "\(resident)"])
        defer { process.stop() }
        let names = (0..<count).flatMap { ["shira-\($0)", "lora-\($0)"] }
        let client = LoadClient(port: process.port, image: image)
        var samples: [(seconds: Double, kib: Int, statistics: ServingStatistics)] = []
        let start = Date()
        samples.append((0, process.residentKiB(), try client.statistics()))
        var served = 0, round = 0
        let wrk = try Wrk()
        while Date().timeIntervalSince(start) < Double(soakSeconds) {
            let result = try wrk.run(port: process.port, names: names, image: image, connections: concurrency, seconds: 10, seed: round)
            served += result.requests
            round += 1
            samples.append((Date().timeIntervalSince(start), process.residentKiB(), try client.statistics()))
        }
        let statistics = try client.statistics()
        emit("Soak: \(soakSeconds) s of random-adapter requests over \(names.count) adapters (SHiRA and LoRA, auto), at most "
              + "\(resident) resident: \(served) requests, \(statistics.loads) loads, \(statistics.evictions) evictions.\n")
        emit("| minute | server RSS MiB | held by tensors MiB | pooled for reuse MiB | loads so far |")
        emit("|---|---|---|---|---|")
        var minute = -1
        func mebibytes(_ bytes: Int) -> String { format(Double(bytes) / 1_048_576, 0) }
        for sample in samples where Int(sample.seconds / 60) > minute || sample.seconds == samples.last?.seconds {
            minute = Int(sample.seconds / 60)
            emit("| \(format(sample.seconds / 60, 1)) | \(mebibytes(sample.kib * 1024)) | \(mebibytes(sample.statistics.tensorBytes)) | "
                  + "\(mebibytes(sample.statistics.pooledTensorBytes)) | \(sample.statistics.loads) |")
        }
        let peak = samples.map(\.kib).max() ?? 0
        emit("\npeak RSS \(format(Double(peak) / 1024, 0)) MiB")
        let exit = process.stop()
        if exit != 0 { printError("warning: peft serve exited with status \(exit) after SIGTERM") }
    }

    func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return .nan }
        return values.sorted()[values.count / 2]
    }

    func format(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }
}

/// A `peft serve` child process on a free loopback port.
final class ServeProcess: @unchecked Sendable {
    let process = Process()
    let port: Int
    private var exitStatus: Int32?

    init(model: String, adapters: URL, policy: String, extra: [String] = []) throws {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.executableURL = FileManager.default.isExecutableFile(atPath: executable.path)
            ? executable : URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = ["serve", "--model", model, "--adapters", adapters.path, "--port", "0", "--policy", policy,
                             "--log-level", "warning"] + extra
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        // Wait for "listening on http://host:PORT" (the base loads first).
        var text = ""
        let deadline = Date().addingTimeInterval(600)
        while !text.contains("\n") {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty || Date() > deadline {
                process.terminate()
                throw ValidationError("peft serve did not start (exit \(process.isRunning ? "-" : String(process.terminationStatus)))")
            }
            text += String(decoding: chunk, as: UTF8.self)
        }
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("listening on") }),
              let portText = line.split(separator: ":").last, let port = Int(portText) else {
            process.terminate()
            throw ValidationError("peft serve printed '\(text)' instead of its address")
        }
        self.port = port
    }

    /// SIGTERM, then the exit status (once; later calls return it again).
    @discardableResult func stop() -> Int32 {
        if let exitStatus { return exitStatus }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        exitStatus = process.terminationStatus
        return process.terminationStatus
    }

    /// The process's resident set size in KiB (from /proc; 0 where unavailable).
    func residentKiB() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }
}

/// Warm-up requests and statistics for `peft bench serve` (the timed load comes from `wrk`).
struct LoadClient: Sendable {
    let http: LoopbackHTTPClient
    let image: String

    init(port: Int, image: String) {
        http = LoopbackHTTPClient(port: port)
        self.image = image
    }

    /// Classifies the image with `adapter`; returns the seconds it took.
    func classify(_ adapter: String) throws -> Double {
        let body = try JSONSerialization.data(withJSONObject: ["adapter": adapter, "image": image, "top_k": 3])
        let start = DispatchTime.now().uptimeNanoseconds
        let response = try http.send("POST", "/v1/classify", json: body)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        guard response.status == 200 else {
            throw ValidationError("classify \(adapter): HTTP \(response.status): \(String(decoding: response.body, as: UTF8.self))")
        }
        return seconds
    }

    func statistics() throws -> ServingStatistics {
        let response = try http.send("GET", "/health")
        struct Health: Decodable { var statistics: ServingStatistics }
        return try JSONDecoder().decode(Health.self, from: response.body).statistics
    }
}

/// The `wrk` load generator (Debian package `wrk`), driven by a Lua script that draws each request's adapter at
/// random and reports the latency percentiles.
struct Wrk {
    let executable: URL
    let version: String

    init() throws {
        let candidates = ["/usr/bin/wrk", "/usr/local/bin/wrk"]
        guard let path = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw ValidationError("wrk not found; install it with `apt-get install wrk`")
        }
        executable = URL(fileURLWithPath: path)
        let probe = Process()
        probe.executableURL = executable
        probe.arguments = ["--version"]
        let pipe = Pipe()
        probe.standardOutput = pipe
        probe.standardError = pipe
        try probe.run()
        probe.waitUntilExit()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        version = text.split(separator: "\n").first.map { String($0.split(separator: " ").prefix(2).joined(separator: " ")) } ?? "wrk"
    }

    struct Result {
        var requests: Int
        var seconds: Double
        var p50: Double, p95: Double, p99: Double
        var errors: Int
        var requestsPerSecond: Double { Double(requests) / seconds }
    }

    func run(port: Int, names: [String], image: String, connections: Int, seconds: Int, seed: Int) throws -> Result {
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("peft-wrk-\(UUID().uuidString).lua")
        defer { try? FileManager.default.removeItem(at: script) }
        let list = names.map { "\"\($0)\"" }.joined(separator: ",")
        let lua = """
        local names = {\(list)}
        local head = '{"top_k": 3, "image": "\(image)", "adapter": "'
        math.randomseed(\(seed))
        request = function()
          return wrk.format("POST", "/v1/classify", {["Content-Type"] = "application/json"}, head .. names[math.random(#names)] .. '"}')
        end
        done = function(summary, latency, requests)
          local e = summary.errors
          io.write(string.format("RESULT %d %d %d %d %d %d\\n", summary.requests, summary.duration, latency:percentile(50),
            latency:percentile(95), latency:percentile(99), e.connect + e.read + e.write + e.status + e.timeout))
        end
        """
        try lua.write(to: script, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = executable
        process.arguments = ["-t1", "-c\(connections)", "-d\(seconds)s", "--timeout", "60s", "-s", script.path, "http://127.0.0.1:\(port)/v1/classify"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("RESULT ") }) else {
            throw ValidationError("wrk printed no result: \(output.suffix(400))")
        }
        let fields = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard fields.count == 6 else { throw ValidationError("wrk result '\(line)' is not understood") }
        return Result(requests: Int(fields[0]), seconds: fields[1] / 1e6, p50: fields[2] / 1e6, p95: fields[3] / 1e6,
                      p99: fields[4] / 1e6, errors: Int(fields[5]))
    }
}

/// Writes a line to standard output at once (unbuffered, so a long benchmark's tables appear row by row in a file too).
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
