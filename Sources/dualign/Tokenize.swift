// `dualign tokenize`: print the token ids of a text (optionally rendered with the chat template).

import ArgumentParser
import Foundation
import Tokenizers
import Training
import Models

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the token ids of a text, as JSON.")

    @Option(help: "A GGUF file, a Hugging Face directory, or a named model (smollm2-135m).")
    var model = "smollm2-135m"
    @Option(help: "The text to tokenize.")
    var text: String
    @Flag(help: "Render the text as a user turn with the model's chat template (prompt up to the assistant's turn).")
    var chat = false

    func run() throws {
        let loaded = try ModelSource.load(model)
        let tokenizer = try loaded.requireTokenizer()
        let ids: [Int]
        if chat {
            let system = loaded.gguf?.metadataString("tokenizer.chat_template").flatMap(ChatTemplate.defaultSystemPrompt(fromJinja:))
            ids = try ChatTemplate(kind: .chatML, tokenizer: tokenizer, defaultSystemPrompt: system).renderPrompt([.user(text)]).tokens
        } else {
            ids = tokenizer.encode(text)
        }
        Output.line("[" + ids.map(String.init).joined(separator: ", ") + "]")
    }
}
