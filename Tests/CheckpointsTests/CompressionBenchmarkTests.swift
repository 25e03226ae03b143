// Compression ratio and speed of tensor archives on realistic fp32 data; opt-in, run in release:
// DUALIGN_CHECKPOINT_BENCH=1 swift test -c release --filter CheckpointsTests.CompressionBenchmarkTests

import Checkpoints
import Foundation
import XCTest

final class CompressionBenchmarkTests: XCTestCase {
    private func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

    private func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = ContinuousClock.now
        try body()
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    private func fmt(_ x: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", x) }

    func testRatioAndSpeedOnWeightsAndAdamMoments() throws {
        let env = ProcessInfo.processInfo.environment
        guard env["DUALIGN_CHECKPOINT_BENCH"] != nil else {
            throw XCTSkip("set DUALIGN_CHECKPOINT_BENCH=1 (and build with -c release) to run the compression benchmark")
        }
        let n = Int(env["DUALIGN_CHECKPOINT_BENCH_FLOATS"] ?? "") ?? (16 << 20)
        let runs = Int(env["DUALIGN_CHECKPOINT_BENCH_RUNS"] ?? "") ?? 3
        let data: [(String, [Float])] = [
            ("weights N(0,0.02)", TestData.gaussians(n, std: 0.02, seed: 1)),
            ("adam m (EMA of grads)", TestData.adamFirstMoment(n, steps: 4, seed: 2)),
            ("adam v (EMA of grad^2)", TestData.adamSecondMoment(n, steps: 4, seed: 3)),
        ]
        print("zstd \(ZstdFrame.libraryVersion); \(n) floats (\(n * 4 / 1_000_000) MB) per tensor; median of \(runs) runs; MB = 10^6 bytes of safetensors payload")
        print("data                    | shuffle | level | workers | ratio | compress MB/s | decompress MB/s")
        var out = [Float](repeating: 0, count: n)
        for (label, values) in data {
            for (shuffle, level, workers) in [(false, 1, 0), (true, 1, 0), (false, 3, 0), (true, 3, 0), (true, 1, 2)] {
                var encoded = Data()
                var stats: ArchiveStats?
                var enc: [Double] = [], dec: [Double] = []
                for _ in 0..<runs {
                    enc.append(try seconds {
                        try values.withUnsafeBufferPointer {
                            (encoded, stats) = try TensorArchive.encode(tensors: [("t", [n], $0)], shuffle: shuffle, level: level, workers: workers)
                        }
                    })
                    dec.append(try seconds {
                        let contents = try TensorArchive.decode(encoded)
                        try out.withUnsafeMutableBufferPointer { try contents.copyFloats("t", into: $0) }
                    })
                }
                XCTAssertEqual(out.map(\.bitPattern) == values.map(\.bitPattern), true)
                let raw = Double(stats!.rawBytes) / 1e6
                let cols = [label.padding(toLength: 23, withPad: " ", startingAt: 0), shuffle ? "yes    " : "no     ",
                            "\(level)    ", "\(workers)      ", fmt(stats!.ratio, 3), fmt(raw / median(enc)).padding(toLength: 13, withPad: " ", startingAt: 0),
                            fmt(raw / median(dec))]
                print(cols.joined(separator: " | "))
            }
        }
        var planes = [UInt8](repeating: 0, count: n * 4)
        let shuffleTime = median((0..<runs).map { _ in
            seconds { data[0].1.withUnsafeBytes { s in planes.withUnsafeMutableBytes { ByteShuffle.shuffle(s, into: $0) } } }
        })
        let unshuffleTime = median((0..<runs).map { _ in
            seconds { planes.withUnsafeBytes { s in out.withUnsafeMutableBytes { ByteShuffle.unshuffle(s, into: $0) } } }
        })
        let checksumTime = median((0..<runs).map { _ in seconds { _ = planes.withUnsafeBytes { XXH64.hash($0) } } })
        let mb = Double(n * 4) / 1e6
        print("ByteShuffle.shuffle \(fmt(mb / shuffleTime)) MB/s, unshuffle \(fmt(mb / unshuffleTime)) MB/s, XXH64 \(fmt(mb / checksumTime)) MB/s")

        // A whole optimizer-state file (weights, m, v) written to disk with fsync, then read back.
        let dir = try makeScratchDirectory(self)
        for shuffle in [true, false] {
            let url = dir.appendingPathComponent("state-\(shuffle).safetensors.zst")
            let written = try data[0].1.withUnsafeBufferPointer { w in
                try data[1].1.withUnsafeBufferPointer { m in
                    try data[2].1.withUnsafeBufferPointer { v in
                        try TensorArchive.write(tensors: [("w", [n], w), ("m", [n], m), ("v", [n], v)], to: url, shuffle: shuffle, level: 1)
                    }
                }
            }
            let readTime = try seconds {
                let contents = try TensorArchive.read(url)
                for name in ["w", "m", "v"] { try out.withUnsafeMutableBufferPointer { try contents.copyFloats(name, into: $0) } }
            }
            print("file w+m+v shuffle=\(shuffle) level 1: \(written); read+extract \(fmt(Double(written.rawBytes) / 1e6 / readTime)) MB/s")
        }
    }
}
