// Run output on rank 0: one JSON line per step in metrics.jsonl and a live progress line.

import Foundation

/// Appends metric lines to `metrics.jsonl` and prints progress (rank 0 only).
public final class MetricsLog {
    public let url: URL
    let enabled: Bool
    let start = Date()
    var lastProgress = Date.distantPast

    /// Opens the log; it drops lines past `resumedStep` (0: a fresh run) so the file reads as one
    /// uninterrupted run; nil leaves the file as it is (progress and notes only).
    public init(directory: URL, enabled: Bool, resumedStep: Int?) throws {
        url = directory.appendingPathComponent("metrics.jsonl")
        self.enabled = enabled
        guard enabled, let resumedStep else { return }
        if let text = try? String(contentsOf: url, encoding: .utf8) {
            let kept = text.split(separator: "\n").filter { line in
                guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let step = obj["step"] as? Int else { return false }
                return step <= resumedStep
            }
            try (kept.map { $0 + "\n" }.joined()).write(to: url, atomically: true, encoding: .utf8)
        } else {
            FileManager.default.createFile(atPath: url.path, contents: nil)
        }
    }

    /// Writes one line: `step` plus the metrics, keys sorted.
    public func write(step: Int, _ metrics: [String: Double]) {
        guard enabled else { return }
        var obj: [String: Any] = ["step": step]
        for (k, v) in metrics { obj[k] = v.isFinite ? v : String(v) }
        guard let data = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]),
              let handle = try? FileHandle(forWritingTo: url) else { return }
        handle.seekToEndOfFile()
        handle.write(data + Data("\n".utf8))
        try? handle.close()
    }

    /// Prints `step/total loss tokens/s ETA` to standard error, at most every half second (always the last step).
    public func progress(step: Int, total: Int, loss: Double, accuracy: Double?, tokensPerSecond: Double) {
        guard enabled else { return }
        let now = Date()
        guard step == total || now.timeIntervalSince(lastProgress) > 0.5 else { return }
        lastProgress = now
        let elapsed = now.timeIntervalSince(start)
        let eta = step > 0 ? elapsed / Double(step) * Double(total - step) : 0
        let acc = accuracy.map { String(format: "  acc %.3f", $0) } ?? ""
        let line = String(format: "step %d/%d  loss %.4f%@  %.0f tok/s  ETA %@", step, total, loss, acc, tokensPerSecond,
                          Self.duration(eta))
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// Prints a whole line to standard error (rank 0 only).
    public func note(_ s: String) {
        guard enabled else { return }
        FileHandle.standardError.write(Data((s + "\n").utf8))
    }

    static func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? "\(t / 3600)h\(t % 3600 / 60)m" : (t >= 60 ? "\(t / 60)m\(t % 60)s" : "\(t)s")
    }
}
