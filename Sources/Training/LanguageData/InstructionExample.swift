import Foundation
import Models

/// One training example for a causal language model, as one line of a JSONL file holds it.
public enum InstructionExample: Sendable, Equatable {
    /// `{"prompt": ..., "completion": ...}`: the loss counts the completion only.
    case promptCompletion(prompt: String, completion: String)
    /// `{"messages": [{"role": ..., "content": ...}, ...]}`: a conversation rendered with the chat template; the
    /// loss counts the assistant's messages only.
    case messages([ChatMessage])
    /// `{"text": ...}`: plain text; the loss counts every token.
    case text(String)
}

/// Reads instruction data: JSONL, one JSON object per line, each in one of the three forms of
/// ``InstructionExample`` (other keys are ignored; blank lines are skipped).
public enum InstructionData {
    /// Files larger than this are refused before reading (they would not fit the examples in memory anyway).
    public static let maximumFileBytes = 1 << 30
    /// The roles a message may have.
    public static let roles: Set<String> = ["system", "user", "assistant"]

    /// Every example of the JSONL file at `url`, in file order.
    ///
    /// - Throws: ``DataReaderError`` naming the file, and the line for a line that is not a JSON object of one
    ///   of the three forms (with what is wrong), or when the file is missing, too large or holds no example.
    public static func read(_ url: URL) throws -> [InstructionExample] {
        let path = url.path
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        guard let size = attributes?[.size] as? Int else {
            throw DataReaderError(file: path, problem: "cannot be read (no such file?)")
        }
        guard size <= maximumFileBytes else {
            throw DataReaderError(file: path, problem: "is \(size >> 20) MB; at most \(maximumFileBytes >> 20) MB of JSONL is read")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataReaderError(file: path, problem: "cannot be read")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw DataReaderError(file: path, problem: "is not UTF-8 text")
        }
        var examples: [InstructionExample] = []
        var number = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            examples.append(try parse(trimmed, file: path, line: number))
        }
        guard !examples.isEmpty else { throw DataReaderError(file: path, problem: "holds no example (one JSON object per line)") }
        return examples
    }

    /// The example one JSONL line holds; errors name `file` and `line`.
    public static func parse(_ line: String, file: String, line number: Int) throws -> InstructionExample {
        func fail(_ problem: String) -> DataReaderError { DataReaderError(file: "\(file):\(number)", problem: problem) }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
            throw fail("not a JSON object")
        }
        func string(_ key: String, in dictionary: [String: Any], what: String) throws -> String {
            guard let value = dictionary[key] else { throw fail("\(what) has no \"\(key)\"") }
            guard let text = value as? String else { throw fail("\"\(key)\" of \(what) must be a string") }
            return text
        }
        if let messages = object["messages"] {
            guard let list = messages as? [Any], !list.isEmpty else { throw fail("\"messages\" must be a non-empty array") }
            var parsed: [ChatMessage] = []
            for (index, item) in list.enumerated() {
                guard let message = item as? [String: Any] else { throw fail("message \(index + 1) is not an object") }
                let role = try string("role", in: message, what: "message \(index + 1)")
                guard roles.contains(role) else {
                    throw fail("message \(index + 1) has role \"\(role)\"; roles are \(roles.sorted().joined(separator: ", "))")
                }
                parsed.append(ChatMessage(role: role, content: try string("content", in: message, what: "message \(index + 1)")))
            }
            guard parsed.contains(where: { $0.role == "assistant" }) else {
                throw fail("the conversation has no assistant message (nothing to learn)")
            }
            return .messages(parsed)
        }
        if object["prompt"] != nil || object["completion"] != nil {
            let prompt = try string("prompt", in: object, what: "the line")
            let completion = try string("completion", in: object, what: "the line")
            guard !completion.isEmpty else { throw fail("\"completion\" is empty (nothing to learn)") }
            return .promptCompletion(prompt: prompt, completion: completion)
        }
        if object["text"] != nil {
            let text = try string("text", in: object, what: "the line")
            guard !text.isEmpty else { throw fail("\"text\" is empty") }
            return .text(text)
        }
        throw fail("expected \"prompt\" and \"completion\", or \"messages\", or \"text\" (keys: \(object.keys.sorted().joined(separator: ", ")))")
    }
}
