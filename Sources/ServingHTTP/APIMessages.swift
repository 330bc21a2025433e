import Foundation
import Serving
import Training

/// The body of `POST /v1/classify`: one adapter and one input (`image` or `text`) or several (`inputs`).
struct ClassifyRequest: Decodable {
    struct Item: Decodable {
        var image: String?
        var text: String?
    }

    var adapter: String
    var image: String?
    var text: String?
    var inputs: [Item]?
    var topK: Int?

    enum CodingKeys: String, CodingKey {
        case adapter, image, text, inputs
        case topK = "top_k"
    }
}

/// The body of `POST /v1/adapters`.
struct AddAdapterRequest: Decodable {
    var path: String
    var name: String?
}

/// The answer of `POST /v1/classify`: for each input, its most probable classes.
struct ClassifyResponse: Encodable {
    var adapter: String
    var predictions: [[ClassProbability]]
}

/// The answer of `GET /v1/adapters`.
struct AdapterList: Encodable {
    var model: String
    var adapters: [AdapterStatus]
}

/// The answer of `GET /health`.
struct HealthResponse: Encodable {
    var status: String
    var model: String
    var input: String
    var adapters: Int
    var resident: Int
    var statistics: ServingStatistics
}

/// An error answer: `{"error": "..."}`.
struct ErrorResponse: Encodable {
    var error: String
}

/// Limits on what one request may carry.
public struct RequestLimits: Sendable {
    /// Largest request body in bytes (larger ones get 413).
    public var maximumBodyBytes = 32 << 20
    /// Most inputs in one classify request.
    public var maximumInputs = 256
    /// Largest `top_k`.
    public var maximumTopK = 1000
    /// Longest text, in characters.
    public var maximumTextCharacters = 100_000

    public init() {}
}

enum RequestDecoding {
    /// Decodes a JSON body as `T`, turning decoding failures into one sentence naming the field.
    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws -> T {
        guard !bytes.isEmpty else { throw ServingError(.badRequest, "the body is empty; \(what) takes a JSON object") }
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch let error as DecodingError {
            throw ServingError(.badRequest, describe(error, what: what))
        } catch {
            throw ServingError(.badRequest, "the body of \(what) is not JSON: \(error.localizedDescription)")
        }
    }

    private static func field(_ path: [any CodingKey]) -> String {
        var text = ""
        for key in path {
            if let index = key.intValue { text += "[\(index)]" } else { text += text.isEmpty ? key.stringValue : ".\(key.stringValue)" }
        }
        return text.isEmpty ? "the body" : "'\(text)'"
    }

    private static func describe(_ error: DecodingError, what: String) -> String {
        switch error {
        case .typeMismatch(let type, let context):
            return "\(field(context.codingPath)) must be \(typeName(type)) (\(what))"
        case .valueNotFound(let type, let context):
            return "\(field(context.codingPath)) must be \(typeName(type)), not null (\(what))"
        case .keyNotFound(let key, let context):
            return "\(field(context.codingPath + [key])) is missing (\(what))"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "the body of \(what) is not valid JSON" }
            return "\(field(context.codingPath)) is invalid: \(context.debugDescription) (\(what))"
        @unknown default:
            return "the body of \(what) cannot be read"
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is Bool.Type: return "true or false"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") { return "an array" }
            return name.contains("Dictionary") || name.contains("Request") || name.contains("Item") ? "an object" : name
        }
    }

    /// The inputs of a classify request, decoded (base64 images to pixels), or a bad-request error naming the input.
    static func inputs(of request: ClassifyRequest, limits: RequestLimits) throws -> [ServingInput] {
        var items: [(item: ClassifyRequest.Item, field: String)] = []
        let single = request.image != nil || request.text != nil
        if single && request.inputs != nil {
            throw ServingError(.badRequest, "give either 'image'/'text' or 'inputs', not both")
        }
        if single {
            items = [(ClassifyRequest.Item(image: request.image, text: request.text), "")]
        } else if let inputs = request.inputs {
            guard !inputs.isEmpty else { throw ServingError(.badRequest, "'inputs' is empty") }
            guard inputs.count <= limits.maximumInputs else {
                throw ServingError(.badRequest, "'inputs' holds \(inputs.count) inputs; at most \(limits.maximumInputs) per request")
            }
            items = inputs.enumerated().map { ($0.element, "inputs[\($0.offset)].") }
        } else {
            throw ServingError(.badRequest, "nothing to classify: give 'image' (base64 PNG), 'text', or 'inputs' (an array of them)")
        }
        return try items.map { item, prefix in
            switch (item.image, item.text) {
            case (let image?, nil): return .image(try decodeImage(image, field: prefix + "image"))
            case (nil, let text?):
                guard text.count <= limits.maximumTextCharacters else {
                    throw ServingError(.badRequest, "'\(prefix)text' has \(text.count) characters; at most \(limits.maximumTextCharacters)")
                }
                return .text(text)
            case (nil, nil): throw ServingError(.badRequest, "'\(prefix.isEmpty ? "" : prefix)' needs 'image' or 'text'")
            default: throw ServingError(.badRequest, "\(prefix.isEmpty ? "the request" : "'\(prefix.dropLast())'") gives both 'image' and 'text'; give one")
            }
        }
    }

    /// Base64 (optionally a `data:image/...;base64,` URL) to a decoded image.
    static func decodeImage(_ text: String, field: String) throws -> InputImage {
        var payload = Substring(text)
        if payload.hasPrefix("data:"), let comma = payload.firstIndex(of: ",") {
            payload = payload[payload.index(after: comma)...]
        }
        guard let data = Data(base64Encoded: String(payload), options: .ignoreUnknownCharacters), !data.isEmpty else {
            throw ServingError(.badRequest, "'\(field)' is not base64 (it should hold the bytes of a PNG file)")
        }
        do {
            let images = try InputImage.decode([UInt8](data), name: field, path: "'\(field)'")
            guard images.count == 1, let image = images.first else {
                throw ServingError(.badRequest, "'\(field)' holds \(images.count) images; give one per input")
            }
            return image
        } catch let error as ServingError {
            throw error
        } catch {
            throw ServingError(.badRequest, "'\(field)' is not an image we read: \(error)")
        }
    }
}
