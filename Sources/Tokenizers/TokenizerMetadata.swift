// Building a tokenizer from GGUF-style metadata (`tokenizer.ggml.*` keys) without importing Models.

/// Typed access to GGUF-style metadata.
///
/// `Models.GGUFFile` has methods of exactly these names, so a module that imports both
/// (Training, tests) conforms it with one line: `extension GGUFFile: TokenizerMetadata {}`.
public protocol TokenizerMetadata {
    func metadataString(_ key: String) -> String?
    func metadataInt(_ key: String) -> Int?
    func metadataBool(_ key: String) -> Bool?
    func metadataStrings(_ key: String) -> [String]?
    func metadataInts(_ key: String) -> [Int]?
}

extension BPETokenizer {
    /// Builds the tokenizer stored in GGUF metadata: `tokenizer.ggml.model` must be `gpt2`
    /// (byte-level BPE); reads tokens, merges, token_type, pre, bos/eos/pad/unknown ids and
    /// add_bos_token. `source` names the file in error messages.
    public convenience init(gguf metadata: some TokenizerMetadata, source: String = "gguf metadata") throws {
        let model = metadata.metadataString("tokenizer.ggml.model")
        guard let model else {
            throw TokenizerError(.missingField, source: source,
                                 "tokenizer.ggml.model is missing; the file has no embedded tokenizer")
        }
        guard model == "gpt2" else {
            throw TokenizerError(.unsupported, source: source,
                                 "tokenizer.ggml.model is '\(model)'; only byte-level BPE ('gpt2') is supported")
        }
        guard let tokens = metadata.metadataStrings("tokenizer.ggml.tokens") else {
            throw TokenizerError(.missingField, source: source, "tokenizer.ggml.tokens is missing or not an array of strings")
        }
        guard let merges = metadata.metadataStrings("tokenizer.ggml.merges") else {
            throw TokenizerError(.missingField, source: source, "tokenizer.ggml.merges is missing or not an array of strings")
        }
        let preName = metadata.metadataString("tokenizer.ggml.pre") ?? "default"
        guard let pre = PreTokenizerKind(ggufName: preName) else {
            throw TokenizerError(.unsupported, source: source,
                                 "tokenizer.ggml.pre is '\(preName)'; supported: gpt-2 family and smollm/starcoder family")
        }
        try self.init(tokens: tokens, merges: merges,
                      tokenTypes: metadata.metadataInts("tokenizer.ggml.token_type") ?? [],
                      preTokenizer: pre,
                      bosTokenID: metadata.metadataInt("tokenizer.ggml.bos_token_id"),
                      eosTokenID: metadata.metadataInt("tokenizer.ggml.eos_token_id"),
                      padTokenID: metadata.metadataInt("tokenizer.ggml.padding_token_id"),
                      unknownTokenID: metadata.metadataInt("tokenizer.ggml.unknown_token_id"),
                      addBOS: metadata.metadataBool("tokenizer.ggml.add_bos_token") ?? false,
                      source: source)
    }
}
