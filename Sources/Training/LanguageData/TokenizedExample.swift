import Models

/// Token ids of one example and, per position, whether the model is trained to predict that token.
public struct TokenizedExample: Sendable, Equatable {
    public var ids: [Int32]
    /// `targets[i]`: token i counts in the loss (predicted from the tokens before it).
    public var targets: [Bool]

    public init(ids: [Int32], targets: [Bool]) {
        self.ids = ids
        self.targets = targets
    }

    /// Number of tokens that count in the loss.
    public var targetCount: Int { targets.lazy.filter { $0 }.count }
}

/// Turns ``InstructionExample``s into token ids and loss targets for a causal language model.
///
/// - Prompt and completion: with `chat`, rendered as a user message and the assistant's reply (what the model
///   then sees from `peft generate`); otherwise the prompt text followed by the completion and the end token.
///   The completion (and its end marker) is the target.
/// - Messages: the chat template (with its default system message); the assistant's content and its
///   `<|im_end|>` are the targets, never the role headers, the system or the user text.
/// - Text: every token and the end token are targets.
///
/// Each part is tokenized on its own and the ids concatenated, so a target boundary always falls between tokens;
/// the parts meet at special tokens or newlines, where the tokenizer splits the text anyway.
public struct InstructionTokenizer: Sendable {
    public let tokenizer: BytePairTokenizer
    public let template: ChatTemplate
    /// Render prompt-completion pairs as a chat exchange.
    public let chat: Bool
    /// Examples longer than this are cut to their first `maximumTokens` tokens.
    public let maximumTokens: Int

    public init(tokenizer: BytePairTokenizer, template: ChatTemplate, chat: Bool, maximumTokens: Int) {
        self.tokenizer = tokenizer
        self.template = template
        self.chat = chat
        self.maximumTokens = max(2, maximumTokens)
    }

    /// The example's ids and targets, and whether it was cut to `maximumTokens`.
    public func tokenize(_ example: InstructionExample) -> (example: TokenizedExample, truncated: Bool) {
        var ids: [Int32] = [], targets: [Bool] = []
        func add(_ text: String, target: Bool) {
            let encoded = tokenizer.encode(text)
            ids += encoded
            targets += [Bool](repeating: target, count: encoded.count)
        }
        func addEnd() {
            if let eos = tokenizer.eosTokenID { ids.append(eos); targets.append(true) }
        }
        func addConversation(_ messages: [ChatMessage]) {
            if let system = template.defaultSystemPrompt, messages.first?.role != "system" {
                add("<|im_start|>system\n\(system)<|im_end|>\n", target: false)
            }
            for message in messages {
                add("<|im_start|>\(message.role)\n", target: false)
                let learn = message.role == "assistant"
                add(message.content + "<|im_end|>", target: learn)
                add("\n", target: false)
            }
        }
        switch example {
        case .promptCompletion(let prompt, let completion):
            if chat {
                addConversation([ChatMessage(role: "user", content: prompt), ChatMessage(role: "assistant", content: completion)])
            } else {
                add(prompt, target: false)
                add(completion, target: true)
                addEnd()
            }
        case .messages(let messages):
            addConversation(messages)
        case .text(let text):
            add(text, target: true)
            addEnd()
        }
        let truncated = ids.count > maximumTokens
        if truncated {
            ids.removeLast(ids.count - maximumTokens)
            targets.removeLast(targets.count - maximumTokens)
        }
        // The first token has nothing before it to be predicted from.
        if !targets.isEmpty { targets[0] = false }
        return (TokenizedExample(ids: ids, targets: targets), truncated)
    }
}
