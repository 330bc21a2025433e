import Foundation

/// A readable account of why JSON could not be decoded into a type: the key path and what was wrong there,
/// e.g. `at 'swiftpeft.classes': expected Int, found 4.5` instead of Foundation's generic text.
public func describeDecodingError(_ error: Error) -> String {
    func path(_ keys: [CodingKey]) -> String {
        let text = keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            .joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
        return text.isEmpty ? "the top level" : "'\(text)'"
    }
    guard let error = error as? DecodingError else { return "\(error)" }
    switch error {
    case .typeMismatch(let type, let context):
        return "at \(path(context.codingPath)): expected \(type) (\(context.debugDescription))"
    case .valueNotFound(let type, let context):
        return "at \(path(context.codingPath)): expected \(type), found null"
    case .keyNotFound(let key, let context):
        return "at \(path(context.codingPath + [key])): required key missing"
    case .dataCorrupted(let context):
        if context.codingPath.isEmpty, let underlying = context.underlyingError {
            return "not valid JSON (\(underlying.localizedDescription))"
        }
        if context.codingPath.isEmpty { return "not valid JSON (\(context.debugDescription))" }
        return "at \(path(context.codingPath)): \(context.debugDescription)"
    @unknown default:
        return "\(error)"
    }
}

/// Decodes `type` from the JSON file at `url` (a regular file of at most `limit` bytes); errors name the file
/// and, for a value of the wrong type, its key path.
public func decodeJSONFile<T: Decodable>(_ type: T.Type, from url: URL, what: String,
                                         limit: Int = RegularFile.configurationLimit) throws -> T {
    try decodeJSON(type, from: RegularFile.read(url, limit: limit), path: url.path, what: what)
}

/// `decodeJSONFile` for bytes already read from `path` (named in the error).
public func decodeJSON<T: Decodable>(_ type: T.Type, from data: Data, path: String, what: String) throws -> T {
    do { return try JSONDecoder().decode(type, from: data) } catch {
        let text = misfitNumber(type, in: data) ?? describeDecodingError(error)
        throw RegularFile.Failure(kind: .invalid, path: path, reason: "not a valid \(what): \(text)")
    }
}

/// Foundation's decoder on Linux reports a number that does not fit its field (4.5 for an integer, -1 for an
/// unsigned one, 1e30 for an Int) as "not valid JSON", without a key path. When the data is valid JSON, this
/// finds the culprit: each number that is fractional, negative or huge is replaced by 0 in turn, and the one
/// whose replacement lets the decoding succeed is named.
func misfitNumber<T: Decodable>(_ type: T.Type, in data: Data) -> String? {
    guard let root = try? JSONSerialization.jsonObject(with: data) else { return nil }
    var suspects: [(path: [Any], value: NSNumber)] = []
    func walk(_ value: Any, _ path: [Any]) {
        if let object = value as? [String: Any] {
            for (key, inner) in object { walk(inner, path + [key]) }
        } else if let array = value as? [Any] {
            for (index, inner) in array.enumerated() { walk(inner, path + [index]) }
        } else if let number = value as? NSNumber {  // true and false are 1 and 0 here: never suspects
            let double = number.doubleValue
            if double != double.rounded() || double < 0 || abs(double) >= 9.2e18 { suspects.append((path, number)) }
        }
    }
    walk(root, [])
    func replacing(_ value: Any, at path: ArraySlice<Any>) -> Any {
        guard let first = path.first else { return 0 }
        if var object = value as? [String: Any], let key = first as? String, let inner = object[key] {
            object[key] = replacing(inner, at: path.dropFirst())
            return object
        }
        if var array = value as? [Any], let index = first as? Int, array.indices.contains(index) {
            array[index] = replacing(array[index], at: path.dropFirst())
            return array
        }
        return value
    }
    func dotted(_ path: [Any]) -> String {
        path.map { ($0 as? Int).map { "[\($0)]" } ?? "\($0)" }.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
    }
    for suspect in suspects {
        let edited = replacing(root, at: suspect.path[...])
        guard let newData = try? JSONSerialization.data(withJSONObject: edited),
              (try? JSONDecoder().decode(type, from: newData)) != nil else { continue }
        return "at '\(dotted(suspect.path))': the number \(suspect.value) does not fit the field's type (a whole number, or a non-negative one, is expected there)"
    }
    return nil
}
