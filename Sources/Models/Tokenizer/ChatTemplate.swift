/// One message of a conversation.
public struct ChatMessage: Codable, Sendable, Equatable {
    /// "system", "user" or "assistant".
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// The ChatML template of SmolLM2 (and other ChatML models): each message as
/// `<|im_start|>role\ncontent<|im_end|>\n`, a default system message first when the conversation has none, and
/// `<|im_start|>assistant\n` at the end to ask for the model's answer. This is what the Jinja template in
/// SmolLM2's `tokenizer.chat_template` renders.
public struct ChatTemplate: Sendable, Equatable {
    /// The system message put first when a conversation does not start with one (nil: none).
    public var defaultSystemPrompt: String?

    public init(defaultSystemPrompt: String?) { self.defaultSystemPrompt = defaultSystemPrompt }

    /// SmolLM2-Instruct's.
    public static let smolLM2 = ChatTemplate(defaultSystemPrompt: "You are a helpful AI assistant named SmolLM, trained by Hugging Face")

    /// The template a tokenizer's file declares, when it is SmolLM2's ChatML template (else nil).
    public init?(source: String?) {
        guard let source, source.contains("<|im_start|>"), source.contains("<|im_end|>") else { return nil }
        // The default system prompt is the text between the system header and its end marker.
        if let header = source.range(of: "<|im_start|>system\n"),
           let end = source.range(of: "<|im_end|>", range: header.upperBound..<source.endIndex) {
            self.init(defaultSystemPrompt: String(source[header.upperBound..<end.lowerBound]))
        } else {
            self.init(defaultSystemPrompt: nil)
        }
    }

    /// The text of `messages`; with `addGenerationPrompt`, ending with the assistant's header.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool) -> String {
        var text = ""
        if let system = defaultSystemPrompt, let first = messages.first, first.role != "system" {
            text += "<|im_start|>system\n\(system)<|im_end|>\n"
        }
        for message in messages { text += "<|im_start|>\(message.role)\n\(message.content)<|im_end|>\n" }
        if addGenerationPrompt { text += "<|im_start|>assistant\n" }
        return text
    }
}
