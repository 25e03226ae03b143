// The tokenizer benchmark: single-threaded BPETokenizer.encode throughput on English documents.

import Foundation
import Datasets
import Tokenizers
import Training

/// Throughput of `BPETokenizer.encode` over a corpus, one document per call.
public struct TokenizerReport: Codable, Sendable {
    public var source: String
    public var documents: Int
    public var bytes: Int
    public var tokens: Int
    public var repeats: Int
    /// The first pass with a freshly built tokenizer (its piece cache empty), and the median of the
    /// following passes (cache warm), in MB (10^6 bytes of UTF-8) per second.
    public var coldMBps: Double
    public var warmMBps: Double
    public var warmTokensPerSecond: Double
    /// Seconds to build the tokenizer from the model file's vocabulary and merges.
    public var loadSeconds: Double
}

public enum TokenizerBenchmark {
    /// The documents of a text file: for `.jsonl` / `.jsonl.gz`, every string field named `chosen`,
    /// `rejected`, `prompt` or `text` of every line; otherwise blocks of about 2 KB of lines (gzip allowed).
    public static func documents(path: String) throws -> [String] {
        let reader = try LineReader(path: path)
        var docs: [String] = []
        let isJSONL = path.hasSuffix(".jsonl") || path.hasSuffix(".jsonl.gz") || path.hasSuffix(".json.gz")
        var block = ""
        while let line = try reader.nextLine() {
            if isJSONL {
                guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
                for key in ["prompt", "chosen", "rejected", "text"] { if let s = obj[key] as? String { docs.append(s) } }
            } else {
                block += line + "\n"
                if block.utf8.count >= 2048 { docs.append(block); block = "" }
            }
        }
        if !block.isEmpty { docs.append(block) }
        return docs
    }

    /// Encodes every document `1 + repeats` times on the calling thread with the tokenizer `make()` builds.
    public static func run(source: String, documents: [String], repeats: Int, make: () throws -> BPETokenizer) throws -> TokenizerReport {
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
        let docs = documents.map { s -> String in var s = s; s.makeContiguousUTF8(); return s }
        let bytes = docs.reduce(0) { $0 + $1.utf8.count }
        let t0 = now()
        let tokenizer = try make()
        let load = now() - t0
        func pass() -> (Double, Int) {
            var tokens = 0
            let t = now()
            for d in docs { tokens += tokenizer.encode(d, addBOS: false).count }
            return (now() - t, tokens)
        }
        let (cold, tokens) = pass()
        var warm: [Double] = []
        for _ in 0..<repeats { warm.append(pass().0) }
        let w = DPOBenchmark.median(warm)
        return TokenizerReport(source: source, documents: docs.count, bytes: bytes, tokens: tokens, repeats: repeats,
                               coldMBps: Double(bytes) / 1e6 / cold, warmMBps: Double(bytes) / 1e6 / w,
                               warmTokensPerSecond: Double(tokens) / w, loadSeconds: load)
    }
}
