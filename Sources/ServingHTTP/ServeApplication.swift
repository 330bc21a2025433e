import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import Serving

/// Runs the HTTP server of `peft serve` until SIGTERM or SIGINT, then drains: the listener closes, requests in flight
/// are answered, the adapter server's worker finishes its queue, and the call returns.
public enum ServeApplication {
    /// Where the server listens.
    public struct Address: Sendable {
        public var host: String
        /// 0 picks a free port (announced through `onListening`).
        public var port: Int

        public init(host: String = "127.0.0.1", port: Int = 8080) {
            self.host = host
            self.port = port
        }
    }

    /// Serves `api` on `address`. `onListening` receives the bound port once the listener is up. Returns after a
    /// graceful shutdown (SIGTERM/SIGINT); throws when the address cannot be bound.
    public static func run(_ api: ServingAPI, address: Address, idleTimeoutSeconds: Int = 60, logger: Logger,
                           onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        let app = Application(
            router: api.router(),
            server: .http1(configuration: .init(idleTimeout: .seconds(Int64(idleTimeoutSeconds)))),
            configuration: .init(address: .hostname(address.host, port: address.port), serverName: "peft-serve"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? address.port) },
            logger: logger)
        do {
            try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
        } catch {
            await api.server.shutdown()
            throw error
        }
        await api.server.shutdown()
    }
}

/// The process-wide Prometheus registry behind swift-metrics (bootstrapped once).
public enum ServingMetrics {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var shared: PrometheusCollectorRegistry?

    /// Bootstraps swift-metrics with a Prometheus registry the first time and returns that registry every time.
    /// Call it before creating the `AdapterServer` so its counters land in the registry.
    public static func bootstrap() -> PrometheusCollectorRegistry {
        lock.lock(); defer { lock.unlock() }
        if let shared { return shared }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        shared = registry
        return registry
    }
}
