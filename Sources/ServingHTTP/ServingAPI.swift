import Foundation
import Hummingbird
import Metrics
import NIOCore
import Prometheus
import Serving

/// The JSON API of `peft serve` over an `AdapterServer`:
///
/// - `POST /v1/classify`: `{"adapter": NAME, "image": BASE64_PNG}` or `{"adapter": NAME, "text": "..."}` or
///   `{"adapter": NAME, "inputs": [{"image": ...}, ...], "top_k": 5}`; answers
///   `{"adapter": NAME, "predictions": [[{"label", "index", "probability"}, ...], ...]}`, one list per input.
/// - `GET /v1/adapters`; `POST /v1/adapters` with `{"path": DIR, "name": NAME?}` (201); `DELETE /v1/adapters/NAME`.
/// - `GET /health`; `GET /metrics` (Prometheus text format).
///
/// Every error is `{"error": "..."}` with 400 (bad request), 404 (unknown adapter), 409 (name taken),
/// 413 (body too large), 422 (adapter cannot be served on this base) or 503 (shutting down, queue full).
public struct ServingAPI: Sendable {
    public let server: AdapterServer
    public let limits: RequestLimits
    /// Where `/metrics` reads from (nil: `/metrics` answers 404).
    public let registry: PrometheusCollectorRegistry?

    public init(server: AdapterServer, limits: RequestLimits = RequestLimits(), registry: PrometheusCollectorRegistry? = nil) {
        self.server = server
        self.limits = limits
        self.registry = registry
    }

    /// The router with every endpoint.
    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        let api = self
        router.get("/health") { _, _ in
            await api.handle("health") {
                let statuses = api.server.adapterStatuses()
                return try api.json(.ok, HealthResponse(status: "ok", model: api.server.modelName, input: api.server.inputKind.rawValue,
                                                        adapters: statuses.count, resident: statuses.filter(\.resident).count,
                                                        statistics: api.server.currentStatistics()))
            }
        }
        router.get("/metrics") { _, _ in
            await api.handle("metrics") {
                guard let registry = api.registry else { throw ServingError(.notFound, "metrics are off") }
                var headers = HTTPFields()
                headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
            }
        }
        router.get("/v1/adapters") { _, _ in
            await api.handle("adapters") {
                try api.json(.ok, AdapterList(model: api.server.modelName, adapters: api.server.adapterStatuses()))
            }
        }
        router.post("/v1/adapters") { request, _ in
            await api.handle("add_adapter") {
                let body = try await api.body(of: request)
                let add = try RequestDecoding.decode(AddAdapterRequest.self, from: body, what: "POST /v1/adapters")
                let status = try await api.server.addAdapter(name: add.name, directory: URL(fileURLWithPath: add.path))
                return try api.json(.created, status)
            }
        }
        router.delete("/v1/adapters/**") { _, context in
            await api.handle("remove_adapter") {
                let name = context.parameters.getCatchAll().joined(separator: "/")
                return try api.json(.ok, try await api.server.removeAdapter(named: name))
            }
        }
        router.post("/v1/classify") { request, _ in
            await api.handle("classify") {
                let body = try await api.body(of: request)
                let classify = try RequestDecoding.decode(ClassifyRequest.self, from: body, what: "POST /v1/classify")
                let topK = classify.topK ?? 5
                guard (1...api.limits.maximumTopK).contains(topK) else {
                    throw ServingError(.badRequest, "'top_k' must be between 1 and \(api.limits.maximumTopK), got \(topK)")
                }
                let inputs = try RequestDecoding.inputs(of: classify, limits: api.limits)
                let predictions = try await api.server.classify(adapter: classify.adapter, inputs: inputs, topK: topK)
                return try api.json(.ok, ClassifyResponse(adapter: classify.adapter, predictions: predictions))
            }
        }
        return router
    }

    // MARK: Helpers

    private struct BodyTooLarge: Error {}

    /// The request body, at most `limits.maximumBodyBytes`.
    private func body(of request: Request) async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limits.maximumBodyBytes { throw BodyTooLarge() }
        do {
            let buffer = try await request.body.collect(upTo: limits.maximumBodyBytes)
            return Array(buffer.readableBytesView)
        } catch is NIOTooManyBytesError {
            throw BodyTooLarge()
        }
    }

    private func json(_ status: HTTPResponse.Status, _ value: some Encodable) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        let data = try encoder.encode(value)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Runs a handler, answers its errors as JSON and counts the request by route and status.
    private func handle(_ route: String, _ body: () async throws -> Response) async -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        var response: Response
        do {
            response = try await body()
        } catch let error as ServingError {
            response = errorResponse(Self.status(of: error.kind), error.message)
        } catch is BodyTooLarge {
            response = errorResponse(.contentTooLarge, "the body exceeds \(limits.maximumBodyBytes) bytes (--max-body-mb)")
        } catch {
            response = errorResponse(.internalServerError, "\(error)")
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let dimensions = [("route", route), ("status", String(response.status.code))]
        Counter(label: "peft_http_requests_total", dimensions: dimensions).increment()
        Metrics.Timer(label: "peft_http_request_seconds", dimensions: [("route", route)]).recordSeconds(seconds)
        return response
    }

    private func errorResponse(_ status: HTTPResponse.Status, _ message: String) -> Response {
        (try? json(status, ErrorResponse(error: message))) ?? Response(status: status)
    }

    static func status(of kind: ServingError.Kind) -> HTTPResponse.Status {
        switch kind {
        case .badRequest: return .badRequest
        case .notFound: return .notFound
        case .conflict: return .conflict
        case .unprocessable: return .unprocessableContent
        case .unavailable: return .serviceUnavailable
        }
    }
}
