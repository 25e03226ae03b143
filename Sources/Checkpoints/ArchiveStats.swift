// Sizes and speed of one archive write or read.

/// How much an archive write (or read) moved and how fast.
public struct ArchiveStats: Sendable, CustomStringConvertible {
    /// Bytes of the safetensors payload (what `zstd -d` produces).
    public let rawBytes: Int
    /// Bytes of the zstd frame (the file size).
    public let compressedBytes: Int
    /// Wall-clock seconds for the whole operation (shuffle, zstd and file I/O).
    public let seconds: Double

    public init(rawBytes: Int, compressedBytes: Int, seconds: Double) {
        self.rawBytes = rawBytes; self.compressedBytes = compressedBytes; self.seconds = seconds
    }

    /// `rawBytes / compressedBytes`.
    public var ratio: Double { compressedBytes > 0 ? Double(rawBytes) / Double(compressedBytes) : 0 }

    /// Raw megabytes (10^6 bytes) per second.
    public var megabytesPerSecond: Double { seconds > 0 ? Double(rawBytes) / 1e6 / seconds : 0 }

    public var description: String {
        let r = (ratio * 1000).rounded() / 1000, s = megabytesPerSecond.rounded()
        return "\(rawBytes) → \(compressedBytes) bytes (ratio \(r)), \(s) MB/s"
    }
}

/// Seconds elapsed since `start` on the continuous clock.
func secondsSince(_ start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}
