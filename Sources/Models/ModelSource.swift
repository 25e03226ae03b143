// Resolving `--model`: a preset name of the pinned asset, a GGUF file, or a Hugging Face directory,
// loaded with its tokenizer.

import Foundation
import Tokenizers
import Formats

extension GGUFFile: TokenizerMetadata {}

/// A model the user named that cannot be found or read; says what to do.
public struct ModelSourceError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Where models come from.
public enum ModelSource {
    /// Dualign's asset cache (`DUALIGN_CACHE`, default ~/.cache/dualign).
    public static var cacheDirectory: URL {
        if let c = ProcessInfo.processInfo.environment["DUALIGN_CACHE"], !c.isEmpty { return URL(fileURLWithPath: c) }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/dualign")
    }

    /// Named models and their cached files.
    public static let named: [String: String] = ["smollm2-135m": "SmolLM2-135M-Instruct.Q4_1.gguf"]

    /// The file or directory a `--model` argument refers to.
    public static func resolve(_ spec: String) throws -> URL {
        if let file = named[spec] {
            let url = cacheDirectory.appendingPathComponent(file)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw ModelSourceError(message: "model \(spec) is not installed at \(url.path); run `launch/assets.sh model` (or ./launch/quickstart.sh) to fetch and verify it")
            }
            return url
        }
        let url = URL(fileURLWithPath: spec)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ModelSourceError(message: "--model \(spec): no such file or directory; give a GGUF file, a Hugging Face directory, or one of \(named.keys.sorted())")
        }
        return url
    }

    /// Loads a model and, when the file carries one, its tokenizer.
    /// With `loadWeights` false the model has the file's shape and zero weights (ranks that receive
    /// the weights by broadcast).
    /// `valueHeads` adds PPO's value heads (`v_head.weight`, zero unless a Hugging Face directory holds them).
    public static func load(_ spec: String, trainable: Bool = false, scoreHead: Bool = false, valueHeads: Int = 0,
                            loadWeights: Bool = true) throws -> LoadedModel {
        let url = try resolve(spec)
        var isDirectory: ObjCBool = false
        FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory)
        if isDirectory.boolValue {
            let model = try Transformer.load(huggingFaceDirectory: url, trainable: trainable, scoreHead: scoreHead, valueHeads: valueHeads)
            let tokenizerURL = url.appendingPathComponent("tokenizer.json")
            let tokenizer = FileManager.default.fileExists(atPath: tokenizerURL.path) ? try BPETokenizer(tokenizerJSON: tokenizerURL) : nil
            return LoadedModel(model: model, tokenizer: tokenizer, gguf: nil, source: url)
        }
        let gguf = try GGUFFile(contentsOf: url)
        let model = try Transformer.load(gguf: gguf, trainable: trainable, scoreHead: scoreHead, valueHeads: valueHeads,
                                         loadWeights: loadWeights)
        let tokenizer = try BPETokenizer(gguf: gguf, source: url.path)
        return LoadedModel(model: model, tokenizer: tokenizer, gguf: gguf, source: url)
    }
}

/// A model with the tokenizer that came with it.
public struct LoadedModel {
    public let model: Transformer
    public let tokenizer: BPETokenizer?
    /// The GGUF file it came from (its metadata travels into exports).
    public let gguf: GGUFFile?
    public let source: URL

    public init(model: Transformer, tokenizer: BPETokenizer?, gguf: GGUFFile?, source: URL) {
        self.model = model; self.tokenizer = tokenizer; self.gguf = gguf; self.source = source
    }

    /// The tokenizer, or an error saying the model file has none.
    public func requireTokenizer() throws -> BPETokenizer {
        guard let tokenizer else { throw ModelSourceError(message: "\(source.path) has no tokenizer; add tokenizer.json beside the weights") }
        return tokenizer
    }
}
