// A model with LoRA adapters: attaching them (the base becomes frozen and drops its gradient slab),
// the base's identity, switching adapters off (the reference of DPO-family methods), merging them
// into a copy for export, and PEFT's adapter directory (adapter_config.json + adapter_model.safetensors).

import Foundation
import Formats
import Tensors

extension Transformer {
    /// Attaches fresh adapters (A Kaiming-uniform from `settings.seed`, B zero): the base weights are frozen
    /// and their gradient slab is freed; the adapters and the score head (if any) become the trainable slab.
    public func attachAdapters(_ settings: LoRASettings) throws {
        precondition(adapters == nil, "adapters are already attached")
        precondition(training, "adapters train: load the model with trainable: true")
        let score = layout.score.map { UnsafeBufferPointer(start: parameters.pointer + $0, count: config.hiddenSize) }
        let values = layout.valueHead.map { UnsafeBufferPointer(start: parameters.pointer + $0, count: config.valueHeads * config.hiddenSize) }
        baseIdentityCache = Self.identity(of: parameters, count: layout.count)
        adapters = try LoRAAdapters(config: config, settings: settings, score: score, valueHeads: values)
        gradients = nil
    }

    /// A hash of a sample of the weights (every 4,093rd value and the count): cheap, and different for any other model.
    static func identity(of buffer: FloatBuffer, count n: Int) -> String {
        var bytes: [UInt8] = Array("\(n) ".utf8)
        var i = 0
        while i < n { withUnsafeBytes(of: buffer.pointer[i].bitPattern) { bytes.append(contentsOf: $0) }; i += 4093 }
        return StableHash.hex(bytes)
    }

    /// Runs `body` with the adapters switched off (the base model is the reference of DPO-family methods).
    public func withAdaptersDisabled<T>(_ body: () throws -> T) rethrows -> T {
        guard let a = adapters, a.enabled else { return try body() }
        a.enabled = false
        defer { a.enabled = true }
        return try body()
    }

    /// An inference-only copy with the adapters merged in (W + s·B·A, the trained score head): what exports write.
    public func mergedCopy() throws -> Transformer {
        let copy = try Transformer(config: config, trainable: false)
        copy.parameters.copy(from: parameters)
        adapters?.merge(into: copy)
        return copy
    }

    /// Writes PEFT's adapter directory for the attached adapters: `adapter_config.json` and
    /// `adapter_model.safetensors` with PEFT's key names (`base_model.model.<module>.lora_A.weight`), rows of
    /// q and k adapters converted to the Hugging Face (rotate-half) layout, so `PeftModel.from_pretrained`
    /// loads them onto this model's Hugging Face export. Value heads (PPO's critic) are not part of the language
    /// model and are not written. Does nothing without adapters.
    public func saveAdapters(to dir: URL, baseModel: String) throws {
        guard let a = adapters else { return }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var tensors: [(name: String, shape: [Int], values: [Float])] = []
        var modulesToSave: [String] = []
        for v in a.slab.views {
            if v.name == ParameterLayout.valueHeadName { continue }
            var values = Array(UnsafeBufferPointer(start: a.slab.values.pointer + v.offset, count: v.count))
            if v.name == "score.weight" {
                modulesToSave.append("score")
                tensors.append(("base_model.model.score.weight", v.shape, values))
                continue
            }
            // B of q/k maps into rotary rows: convert its output rows as the base weights are converted.
            if v.name.hasSuffix("q_proj.lora_B.weight") || v.name.hasSuffix("k_proj.lora_B.weight") {
                let heads = v.name.contains("q_proj") ? config.numHeads : config.numKVHeads
                values.withUnsafeMutableBufferPointer {
                    config.ropeLayout.convertRows($0.baseAddress!, heads: heads, headSize: config.headSize, columns: a.settings.rank, to: .halfSplit)
                }
            }
            tensors.append(("base_model.model." + v.name, v.shape, values))
        }
        let data = withBuffers(tensors) { SafetensorsWriter.encode($0, dtype: .f32, metadata: ["format": "pt"]) }
        try data.write(to: dir.appendingPathComponent("adapter_model.safetensors"), options: .atomic)
        let s = a.settings
        var json: [String: Any] = [
            "peft_type": "LORA", "task_type": config.scoreHead ? "SEQ_CLS" : "CAUSAL_LM", "r": s.rank, "lora_alpha": s.alpha,
            "lora_dropout": s.dropout, "bias": "none", "fan_in_fan_out": false, "inference_mode": true,
            "init_lora_weights": true, "use_rslora": false, "use_dora": false,
            "target_modules": LoRATarget.allCases.filter(s.targets.contains).map { $0.modulePath.split(separator: ".").last.map(String.init)! },
            "base_model_name_or_path": baseModel,
        ]
        if !modulesToSave.isEmpty { json["modules_to_save"] = modulesToSave }
        let out = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try out.write(to: dir.appendingPathComponent("adapter_config.json"), options: .atomic)
    }

    /// Loads adapter values written by `saveAdapters` (or PEFT, for the same targets and rank) into the
    /// attached adapters: PEFT key names, q/k rows converted back to this model's rotary layout. Value heads,
    /// which `saveAdapters` does not write, keep their values.
    public func loadAdapters(from dir: URL) throws {
        guard let a = adapters else { preconditionFailure("attach adapters before loading their values") }
        let url = dir.appendingPathComponent("adapter_model.safetensors")
        let file = try SafetensorsFile(contentsOf: url)
        for v in a.slab.views where v.name != ParameterLayout.valueHeadName {
            let key = v.name == "score.weight" ? "base_model.model.score.weight" : "base_model.model." + v.name
            guard let e = file.entries[key] else {
                throw ModelFileError(file: url.path, message: "tensor \(key) is missing: the adapters were trained with other targets or without a score head (this run: r=\(a.settings.rank) on \(a.settings.targets.map(\.rawValue)))")
            }
            guard e.shape == v.shape else {
                throw ModelFileError(file: url.path, message: "tensor \(key) has shape \(e.shape), this run's adapter is \(v.shape); use the same lora.rank")
            }
            let p = a.slab.values.pointer + v.offset
            file.copy(e, into: p)
            if v.name.hasSuffix("q_proj.lora_B.weight") || v.name.hasSuffix("k_proj.lora_B.weight") {
                let heads = v.name.contains("q_proj") ? config.numHeads : config.numKVHeads
                RotaryLayout.halfSplit.convertRows(p, heads: heads, headSize: config.headSize, columns: a.settings.rank, to: config.ropeLayout)
            }
        }
    }
}
