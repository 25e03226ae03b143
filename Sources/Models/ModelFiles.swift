// Loading and saving whole models: GGUF files (llama.cpp names, interleaved rotary rows) and
// Hugging Face directories (safetensors + config.json, rotate-half rows), with the rotary layout
// converted where the two differ.

import Foundation
import Tensors
import Formats

/// A model file that does not fit the architecture; names the file, the tensor or field, and what to do.
public struct ModelFileError: Error, CustomStringConvertible {
    public let file: String
    public let message: String
    public var description: String { "\(file): \(message)" }
}

/// GGUF (llama.cpp) tensor names for each Hugging Face name.
public enum GGUFNames {
    /// The GGUF name of a Hugging Face Llama tensor name.
    public static func ggufName(forHF name: String) -> String? {
        switch name {
        case "model.embed_tokens.weight": return "token_embd.weight"
        case "model.norm.weight": return "output_norm.weight"
        case "lm_head.weight": return "output.weight"
        case "score.weight": return "cls.output.weight"
        default: break
        }
        let parts = name.split(separator: ".")
        guard parts.count >= 5, parts[0] == "model", parts[1] == "layers", let l = Int(parts[2]) else { return nil }
        let rest = parts[3...].joined(separator: ".")
        let map = ["input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
                   "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
                   "self_attn.o_proj.weight": "attn_output.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
                   "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
                   "mlp.down_proj.weight": "ffn_down.weight"]
        return map[rest].map { "blk.\(l).\($0)" }
    }
}

extension RotaryLayout {
    /// Reorders the rows of a q or k projection (heads × HS rows of `columns`) from `self` to `target`.
    /// halfSplit row h·HS + j·HS/2 + i  ↔  interleaved row h·HS + 2i + j  (llama.cpp's converter permutation).
    public func convertRows(_ w: UnsafeMutablePointer<Float>, heads: Int, headSize HS: Int, columns C: Int, to target: RotaryLayout) {
        guard self != target else { return }
        let n = heads * HS * C
        let copy = [Float](UnsafeBufferPointer(start: w, count: n))
        let half = HS / 2
        for h in 0..<heads {
            for j in 0..<2 {
                for i in 0..<half {
                    let hf = h * HS + j * half + i, gg = h * HS + 2 * i + j
                    let (src, dst) = self == .halfSplit ? (hf, gg) : (gg, hf)
                    copy.withUnsafeBufferPointer { c in (w + dst * C).update(from: c.baseAddress! + src * C, count: C) }
                }
            }
        }
    }
}

extension ModelConfig {
    /// The architecture read from GGUF metadata (`llama.*` keys; rotary rows interleaved).
    public init(gguf: GGUFFile) throws {
        func fail(_ m: String) -> ModelFileError { ModelFileError(file: gguf.path, message: m) }
        let arch = gguf.metadataString("general.architecture") ?? "?"
        guard arch == "llama" else { throw fail("general.architecture is '\(arch)'; Dualign runs llama-architecture models") }
        func int(_ key: String) throws -> Int {
            guard let v = gguf.metadataInt("llama." + key) else { throw fail("metadata llama.\(key) is missing; the file is not a complete llama GGUF") }
            return v
        }
        let embedding = try gguf.requireTensor("token_embd.weight")
        let heads = try int("attention.head_count")
        self.init(vocabSize: embedding.shape[0], hiddenSize: try int("embedding_length"),
                  intermediateSize: try int("feed_forward_length"), numLayers: try int("block_count"), numHeads: heads,
                  numKVHeads: gguf.metadataInt("llama.attention.head_count_kv") ?? heads,
                  ropeTheta: Float(gguf.metadataDouble("llama.rope.freq_base") ?? 10_000),
                  rmsNormEps: Float(gguf.metadataDouble("llama.attention.layer_norm_rms_epsilon") ?? 1e-5),
                  maxPositions: try int("context_length"), tieWordEmbeddings: gguf.tensor(named: "output.weight") == nil,
                  ropeLayout: .interleaved)
        do { try validate() } catch { throw fail("\(error)") }
    }
}

extension Transformer {
    /// A model holding the weights of a GGUF file, dequantized to Float32 (rotary layout: interleaved).
    /// A new score head starts as HF initialises one (normal, std 0.02, seed 0); `loadWeights` false
    /// leaves every weight zero (a rank that receives them by broadcast).
    /// Value heads (`valueHeads` ≥ 1) start at zero: GGUF files carry none.
    public static func load(gguf: GGUFFile, trainable: Bool = true, scoreHead: Bool = false, valueHeads: Int = 0,
                            loadWeights: Bool = true) throws -> Transformer {
        var config = try ModelConfig(gguf: gguf)
        config.scoreHead = scoreHead
        config.valueHeads = valueHeads
        let model = try Transformer(config: config, trainable: trainable)
        guard loadWeights else { return model }
        model.initializeScoreHead()
        model.initializeValueHeads()
        var jobs: [(GGUFTensorInfo, ParameterView)] = []
        for view in model.layout.views {
            if view.name == "score.weight", gguf.tensor(named: "cls.output.weight") == nil { continue }   // a new head keeps its initialisation
            guard let name = GGUFNames.ggufName(forHF: view.name) else { continue }
            let t = try gguf.requireTensor(name)
            guard t.shape == view.shape else {
                throw ModelFileError(file: gguf.path, message: "tensor \(name) has shape \(t.shape), the architecture needs \(view.shape)")
            }
            jobs.append((t, view))
        }
        var firstError: Error?
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: jobs.count) { i in
            do { try gguf.dequantize(jobs[i].0, into: model.parameters.pointer + jobs[i].1.offset) } catch {
                lock.lock(); if firstError == nil { firstError = error }; lock.unlock()
            }
        }
        if let firstError { throw firstError }
        return model
    }

    /// A model from a Hugging Face directory (`config.json` + `model.safetensors`), rotary rows rotate-half;
    /// value heads (`valueHeads` ≥ 1) are read from `v_head.weight` when the file has it, else start at zero.
    public static func load(huggingFaceDirectory dir: URL, trainable: Bool = true, scoreHead: Bool = false,
                            valueHeads: Int = 0) throws -> Transformer {
        let configURL = dir.appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: configURL.path),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ModelFileError(file: configURL.path, message: "cannot read a JSON object; a Hugging Face model directory needs config.json")
        }
        func int(_ k: String) throws -> Int {
            guard let v = json[k] as? Int else { throw ModelFileError(file: configURL.path, message: "field \(k) is missing or not an integer") }
            return v
        }
        let heads = try int("num_attention_heads")
        let theta = (json["rope_theta"] as? Double) ?? ((json["rope_parameters"] as? [String: Any])?["rope_theta"] as? Double) ?? 10_000
        let config = ModelConfig(vocabSize: try int("vocab_size"), hiddenSize: try int("hidden_size"),
                                 intermediateSize: try int("intermediate_size"), numLayers: try int("num_hidden_layers"),
                                 numHeads: heads, numKVHeads: (json["num_key_value_heads"] as? Int) ?? heads,
                                 ropeTheta: Float(theta), rmsNormEps: Float((json["rms_norm_eps"] as? Double) ?? 1e-5),
                                 maxPositions: (json["max_position_embeddings"] as? Int) ?? 2048,
                                 tieWordEmbeddings: (json["tie_word_embeddings"] as? Bool) ?? false, ropeLayout: .halfSplit,
                                 scoreHead: scoreHead, valueHeads: valueHeads)
        do { try config.validate() } catch { throw ModelFileError(file: configURL.path, message: "\(error)") }
        let model = try Transformer(config: config, trainable: trainable)
        let file = try SafetensorsFile(contentsOf: dir.appendingPathComponent("model.safetensors"))
        model.initializeScoreHead()
        model.initializeValueHeads()
        for view in model.layout.views {
            if view.name == "score.weight" && file.entries[view.name] == nil { continue }
            if view.name == ParameterLayout.valueHeadName && file.entries[view.name] == nil { continue }
            guard let e = file.entries[view.name] else {
                throw ModelFileError(file: file.path, message: "tensor \(view.name) is missing")
            }
            guard e.shape == view.shape else {
                throw ModelFileError(file: file.path, message: "tensor \(view.name) has shape \(e.shape), config.json implies \(view.shape)")
            }
            file.copy(e, into: model.parameters.pointer + view.offset)
        }
        return model
    }

    /// The parameters in a given rotary layout (q/k rows converted), as (HF name, shape, values). Value heads
    /// are training state of PPO's critic, not part of the language model: exports leave them out.
    public func exportTensors(layout target: RotaryLayout) -> [(name: String, shape: [Int], values: [Float])] {
        layout.views.filter { $0.name != ParameterLayout.valueHeadName }.map { view in
            var values = Array(UnsafeBufferPointer(start: parameters.pointer + view.offset, count: view.count))
            if view.name.hasSuffix("q_proj.weight") || view.name.hasSuffix("k_proj.weight") {
                let heads = view.name.hasSuffix("q_proj.weight") ? config.numHeads : config.numKVHeads
                values.withUnsafeMutableBufferPointer {
                    config.ropeLayout.convertRows($0.baseAddress!, heads: heads, headSize: config.headSize,
                                                  columns: config.hiddenSize, to: target)
                }
            }
            return (view.name, view.shape, values)
        }
    }

    /// Writes a Hugging Face directory: `model.safetensors` (rotate-half rows) and `config.json`.
    public func saveHuggingFace(to dir: URL, dtype: SafetensorsDType = .f32) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let tensors = exportTensors(layout: .halfSplit)
        let data = withBuffers(tensors) { SafetensorsWriter.encode($0, dtype: dtype, metadata: ["format": "pt"]) }
        try data.write(to: dir.appendingPathComponent("model.safetensors"), options: .atomic)
        let c = config
        let json: [String: Any] = [
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
            "vocab_size": c.vocabSize, "hidden_size": c.hiddenSize, "intermediate_size": c.intermediateSize,
            "num_hidden_layers": c.numLayers, "num_attention_heads": c.numHeads, "num_key_value_heads": c.numKVHeads,
            "head_dim": c.headSize, "rope_theta": Double(c.ropeTheta), "rms_norm_eps": Double(c.rmsNormEps),
            "max_position_embeddings": c.maxPositions, "tie_word_embeddings": c.tieWordEmbeddings,
            "attention_bias": false, "mlp_bias": false, "torch_dtype": dtype == .f32 ? "float32" : (dtype == .f16 ? "float16" : "bfloat16"),
        ]
        let out = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        try out.write(to: dir.appendingPathComponent("config.json"), options: .atomic)
    }
}

extension Transformer {
    /// Fills a score head that a file does not provide: normal(0, 0.02), as Hugging Face initialises it.
    func initializeScoreHead() {
        guard let s = layout.score else { return }
        var rng = SplitMix64(seed: 0x5C0_4E)
        for i in 0..<config.hiddenSize { parameters.pointer[s + i] = 0.02 * rng.nextGaussian() }
    }
}

/// Calls `body` with buffer pointers over each tensor's values.
func withBuffers<R>(_ tensors: [(name: String, shape: [Int], values: [Float])],
                    _ body: ([(name: String, shape: [Int], values: UnsafeBufferPointer<Float>)]) -> R) -> R {
    var pointers: [(name: String, shape: [Int], values: UnsafeBufferPointer<Float>)] = []
    var storage: [UnsafeMutableBufferPointer<Float>] = []
    defer { storage.forEach { $0.deallocate() } }
    for t in tensors {
        let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: t.values.count)
        _ = b.initialize(from: t.values)
        storage.append(b)
        pointers.append((t.name, t.shape, UnsafeBufferPointer(b)))
    }
    return body(pointers)
}

extension Transformer {
    /// Writes a llama GGUF (F32 or F16 tensors, interleaved rotary rows), with the architecture keys and
    /// every `tokenizer.*` / `general.*` key of `metadataSource` (the file the model came from) copied over.
    public func saveGGUF(to url: URL, type: GGMLType = .f32, metadataSource: GGUFFile? = nil, name: String = "dualign export") throws {
        var w = try GGUFWriter()
        let c = config
        w.set("general.architecture", .string("llama"))
        w.set("general.name", .string(name))
        w.set("llama.block_count", .uint32(UInt32(c.numLayers)))
        w.set("llama.context_length", .uint32(UInt32(c.maxPositions)))
        w.set("llama.embedding_length", .uint32(UInt32(c.hiddenSize)))
        w.set("llama.feed_forward_length", .uint32(UInt32(c.intermediateSize)))
        w.set("llama.attention.head_count", .uint32(UInt32(c.numHeads)))
        w.set("llama.attention.head_count_kv", .uint32(UInt32(c.numKVHeads)))
        w.set("llama.rope.freq_base", .float32(c.ropeTheta))
        w.set("llama.attention.layer_norm_rms_epsilon", .float32(c.rmsNormEps))
        w.set("llama.rope.dimension_count", .uint32(UInt32(c.headSize)))
        w.set("llama.vocab_size", .uint32(UInt32(c.vocabSize)))
        w.set("general.file_type", .uint32(type == .f16 ? 1 : 0))
        if let src = metadataSource {
            for key in src.metadataKeys where key.hasPrefix("tokenizer.") { w.set(key, src.metadata[key]!) }
        }
        for t in exportTensors(layout: .interleaved) {
            guard let gname = GGUFNames.ggufName(forHF: t.name) else { continue }
            // Norm vectors stay F32 as llama.cpp expects; matrices take the requested type.
            let tensorType: GGMLType = t.shape.count == 1 ? .f32 : type
            let values = t.values
            try w.addTensor(name: gname, dims: Array(t.shape.reversed()), type: tensorType, count: values.count) { out in
                _ = out.initialize(from: values)
            }
        }
        try w.write(to: url)
    }
}
