import ArgumentParser
import Foundation
import Logging
import Serving
import ServingHTTP

/// `peft serve`: one base model, every adapter under a folder, a JSON API over HTTP.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve many adapters from one base model over HTTP (JSON API, Prometheus metrics).",
        discussion: """
        Every folder under --adapters that holds an adapter_config.json becomes an adapter, named by its path \
        below --adapters (a trailing 'adapter' component dropped: runs/a/adapter is 'a'). Requests are grouped by \
        adapter; SHiRA adapters are switched in by a scatter and removed by restoring the saved base values, dense \
        mergeable ones fused or unfused by measured cost (--policy). Endpoints: POST /v1/classify, GET/POST \
        /v1/adapters, DELETE /v1/adapters/NAME, GET /health, GET /metrics. SIGTERM or SIGINT drains and exits 0.
        """)

    @OptionGroup var global: GlobalOptions
    @Option(help: "Base model (see `peft models`): a vision model or minilm-l6.") var model = "dinov2-s14"
    @Option(help: "Folder whose adapters to serve (searched 4 levels deep; may be empty).") var adapters: String
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(parsing: .unconditional, help: "Port to listen on (0: any free port; the one chosen is printed).") var port = 8080
    @Option(name: .customLong("max-resident"), parsing: .unconditional, help: "At most this many adapters in memory at once.") var maxResident: Int?
    @Option(name: .customLong("max-memory"), parsing: .unconditional, help: "At most this many MB of adapter tensors in memory at once.") var maxMemory: Int?
    @Flag(help: "Read every adapter at start (as far as the limits allow) instead of on first use.") var preload = false
    @Option(help: "fused, unfused or auto (SHiRA fused; LoRA/DoRA/NEAT/RLRR fused when cheaper than unfused, by measurement).")
    var policy = "auto"
    @Option(name: .customLong("max-batch"), parsing: .unconditional, help: "At most this many examples in one forward pass.") var maxBatch = 32
    @Option(name: .customLong("max-queued"), parsing: .unconditional, help: "At most this many requests waiting (more get 503).") var maxQueued = 4096
    @Option(name: .customLong("max-body-mb"), parsing: .unconditional, help: "Largest request body in MB (larger get 413).") var maxBodyMB = 32
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.") var logLevel = "info"

    func validate() throws {
        guard SwitchPolicy(rawValue: policy) != nil else {
            throw ValidationError("--policy '\(policy)': choose fused, unfused or auto")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level '\(logLevel)': choose trace, debug, info, notice, warning, error or critical")
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port \(port): must be between 0 and 65535") }
        if let maxResident, maxResident < 1 { throw ValidationError("--max-resident \(maxResident): must be at least 1") }
        if let maxMemory, !(1...1_000_000).contains(maxMemory) { throw ValidationError("--max-memory \(maxMemory): must be between 1 and 1000000 MB") }
        guard (1...1024).contains(maxBatch) else { throw ValidationError("--max-batch \(maxBatch): must be between 1 and 1024") }
        guard (1...1_000_000).contains(maxQueued) else { throw ValidationError("--max-queued \(maxQueued): must be between 1 and 1000000") }
        guard (1...1024).contains(maxBodyMB) else { throw ValidationError("--max-body-mb \(maxBodyMB): must be between 1 and 1024") }
    }

    func run() throws {
        let box = CommandBox(command: self)
        try runBlocking { try await box.command.runAsync() }
    }

    func runAsync() async throws {
        try global.announce()
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "peft.serve")
        let registry = ServingMetrics.bootstrap()
        let root = URL(fileURLWithPath: adapters)
        let entries: [AdapterEntry]
        do { entries = try AdapterCatalog.discover(in: root) } catch { throw ValidationError("--adapters \(adapters): \(error)") }
        var options = ServingOptions()
        options.policy = SwitchPolicy(rawValue: policy) ?? .auto
        options.maximumResident = maxResident
        options.maximumAdapterBytes = maxMemory.map { $0 << 20 }
        options.maximumBatch = maxBatch
        options.maximumQueued = maxQueued
        let server: AdapterServer
        do {
            server = try AdapterServer(model: model, adapters: entries, options: options) { printError($0) }
        } catch { throw ValidationError("\(error)") }
        logger.info("base loaded", metadata: ["model": "\(model)", "adapters": "\(entries.count)",
                                              "base_mb": "\(server.baseBytes >> 20)", "policy": "\(options.policy.rawValue)"])
        if preload {
            do {
                try await server.preload { printError("preload: \($0)") }
            } catch {
                await server.shutdown()
                throw ValidationError("--preload: \(error)")
            }
        }
        var limits = RequestLimits()
        limits.maximumBodyBytes = maxBodyMB << 20
        let api = ServingAPI(server: server, limits: limits, registry: registry)
        let host = self.host
        do {
            try await ServeApplication.run(api, address: .init(host: host, port: port), logger: logger) { bound in
                // One line on standard output, flushed, so scripts and tests can wait for it and read the port.
                FileHandle.standardOutput.write(Data("listening on http://\(host):\(bound)\n".utf8))
            }
        } catch {
            throw ValidationError("cannot serve on \(host):\(port): \(error)")
        }
        logger.info("stopped", metadata: ["requests": "\(server.currentStatistics().requests)"])
    }
}
