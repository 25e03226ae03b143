// The generation benchmark: KV-cache decoding of a batch of prompts of slightly different lengths, every
// sequence generating exactly N new tokens (no stop tokens) — the same work as launch/bench/peer_generate.py.
// Greedy by default; with `samples` K > 1 or a temperature, K samples of every prompt drawn at that
// temperature (no top-k, no top-p), as MoCAN and PeCAN sample (transformers: `num_return_sequences`).

import Foundation
import Models
import Tokenizers
import Training
import Tensors

/// Median timings and throughput of `Transformer.generate`.
public struct GenerationReport: Codable, Sendable {
    public var model: String
    public var parameters: Int
    public var batch: Int
    /// Samples per prompt (sequences decoded together = batch · samples).
    public var samples: Int
    /// nil: greedy; otherwise the sampling temperature.
    public var temperature: Float?
    /// The one-row projection kernel (`MatVec.implementation`).
    public var matvec: String
    public var newTokens: Int
    public var promptLengths: [Int]
    public var threads: Int
    public var repeats: Int
    /// Median seconds of one whole `generate` call (prefill included) and the generated tokens per second
    /// (batch · samples · N per call).
    public var seconds: Double
    public var tokensPerSecond: Double
    /// Median seconds of the prefill alone (one `decodeStep` over the distinct prompts into a fresh cache),
    /// and the decode rate that leaves: batch · samples · (N − 1) tokens / (seconds − prefill).
    public var prefillSeconds: Double
    public var decodeTokensPerSecond: Double
    /// The kernel family OpenBLAS runs (see `DPOBenchmark.blasCore`).
    public var blasCore: String?
}

public enum GenerationBenchmark {
    /// English openings the prompts are cut from (tokenized, repeated if short, truncated).
    static let texts = [
        "The history of the printing press begins in the fifteenth century, when a goldsmith in Mainz",
        "Here is a simple recipe for bread that anyone can bake at home with flour, water, salt and yeast.",
        "Photosynthesis is the process by which green plants use sunlight to turn carbon dioxide and water",
        "Dear hiring manager, I am writing to apply for the position of junior software engineer at your",
        "The train left the station a few minutes late, and by the time it reached the coast the sky had",
        "To solve a quadratic equation, first move every term to one side so that the equation reads",
        "Rivers shape the land around them: over thousands of years they carve valleys, carry sediment",
        "In the small village where I grew up, everyone knew the baker, the postman and the old teacher",
        "A good night's sleep matters more than most people think. Adults need between seven and nine hours",
        "The committee met on Tuesday to discuss the budget for next year, and the first item on the agenda",
        "Learning a second language as an adult is hard but rewarding. The most effective method is to",
        "When the first settlers arrived in the valley, they found a wide river, thick forests and a climate",
        "Computers store numbers in binary, using only the digits zero and one. A single binary digit is",
        "The museum's new exhibition brings together paintings, letters and photographs from the artist's",
        "If you want to keep tomatoes fresh for longer, store them at room temperature away from sunlight",
        "The city council announced on Monday that the old bridge across the river will be closed for repairs",
    ]

    /// `count` prompts of lengths `length`, `length − 1`, …, `length − 3` (cycling), cut from English text.
    public static func prompts(tokenizer: BPETokenizer, count: Int, length: Int) -> [[Int32]] {
        (0..<count).map { i in
            let target = max(1, length - i % 4)
            let ids = tokenizer.encode(texts[i % texts.count], addBOS: false)
            var out: [Int32] = []
            while out.count < target { out += ids.prefix(target - out.count).map(Int32.init) }
            return out
        }
    }

    /// Times `repeats` `generate` calls (after `warmup` untimed ones) and `repeats` prefills: greedy when
    /// `temperature` is nil, else `samples` draws per prompt at that temperature (seed 0, sample ids
    /// prompt · samples + k as `PromptSampler` numbers them). Returns the report and the tokens of the last call.
    public static func run(model: Transformer, name: String, prompts: [[Int32]], samples: Int = 1, temperature: Float? = nil,
                           newTokens: Int, repeats: Int, warmup: Int, threads: Int) -> (GenerationReport, [[Int32]]) {
        let options = temperature.map { SamplingOptions(temperature: $0, maxNewTokens: newTokens) }
            ?? SamplingOptions(greedy: true, maxNewTokens: newTokens)
        let jobs = prompts.indices.flatMap { i in (0..<samples).map { (i, $0) } }
        let inputs = jobs.map { prompts[$0.0] }, ids = jobs.map { UInt64($0.0 * samples + $0.1) }
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
        var times: [Double] = [], prefills: [Double] = []
        var outputs: [[Int32]] = []
        for r in 0..<(warmup + repeats) {
            let t0 = now()
            let out = model.generate(prompts: inputs, options: options, stopTokens: [], sampleIDs: ids)
            let t1 = now()
            if r >= warmup { times.append(t1 - t0) }
            outputs = out.map(\.tokens)
        }
        let capacity = min(model.config.maxPositions, prompts.map(\.count).max()! + newTokens)
        for _ in 0..<repeats {
            let cache = KVCache(config: model.config, sequences: prompts.count, capacity: capacity)
            let t0 = now()
            _ = model.decodeStep(cache, newTokens: prompts)
            prefills.append(now() - t0)
        }
        let seconds = DPOBenchmark.median(times), prefill = DPOBenchmark.median(prefills)
        let generated = outputs.reduce(0) { $0 + $1.count }
        let report = GenerationReport(model: name, parameters: model.layout.count, batch: prompts.count, samples: samples,
                                      temperature: temperature, matvec: MatVec.implementation.rawValue, newTokens: newTokens,
                                      promptLengths: prompts.map(\.count), threads: threads, repeats: repeats,
                                      seconds: seconds, tokensPerSecond: Double(generated) / seconds, prefillSeconds: prefill,
                                      decodeTokensPerSecond: Double(inputs.count * (newTokens - 1)) / max(seconds - prefill, 1e-9),
                                      blasCore: DPOBenchmark.blasCore)
        return (report, outputs)
    }
}
