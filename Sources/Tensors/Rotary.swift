// Rotary position embeddings, applied in place to the query and key heads.
// Legend: R rows (B·T), H heads, HS head size, P positions.
// Two layouts pair a head's channels differently:
//   halfSplit   (Hugging Face "rotate_half"): channel i pairs with i + HS/2.
//   interleaved (GGUF / llama.cpp):           channel 2i pairs with 2i + 1.
// Both rotate pair i by the angle p · base^(−2i/HS).

/// How a head's channels are paired for rotation.
public enum RotaryLayout: String, Codable, CaseIterable, Sendable {
    case halfSplit
    case interleaved
}

/// Cosine and sine of every (position, frequency) pair, computed as Hugging Face does (Float32).
public struct RotaryTable: Sendable {
    public let headSize: Int
    public let positions: Int
    /// (P, HS/2)
    public let cos: [Float]
    /// (P, HS/2)
    public let sin: [Float]

    /// Builds the table for `positions` positions and a head of `headSize` channels.
    public init(positions: Int, headSize: Int, base: Float) {
        self.headSize = headSize
        self.positions = positions
        let half = headSize / 2
        var c = [Float](repeating: 0, count: positions * half), s = c
        for i in 0..<half {
            let invFreq: Float = 1 / Float.pow(base, Float(2 * i) / Float(headSize))
            for p in 0..<positions {
                let angle = Float(p) * invFreq
                c[p * half + i] = Float.cos(angle)
                s[p * half + i] = Float.sin(angle)
            }
        }
        cos = c
        sin = s
    }
}

extension Float {
    @inline(__always) static func pow(_ x: Float, _ y: Float) -> Float { Float(Foundation.pow(Double(x), Double(y))) }
    @inline(__always) static func cos(_ x: Float) -> Float { Foundation.cos(x) }
    @inline(__always) static func sin(_ x: Float) -> Float { Foundation.sin(x) }
}

import Foundation

public enum Rotary {
    /// Rotates H heads of HS channels in every row of x, in place. Row r is at position r % T, or at
    /// `positions[r]` when given (incremental decoding); rows are `rowStride` floats apart (the fused QKV
    /// buffer), heads contiguous within a row. `inverse` rotates by the negative angle: the backward pass.
    public static func apply(_ x: FloatPtr, rows R: Int, rowStride: Int, heads H: Int, sequenceLength T: Int,
                             table: RotaryTable, layout: RotaryLayout, inverse: Bool = false,
                             positions: UnsafePointer<Int32>? = nil) {
        let HS = table.headSize, half = HS / 2
        let sign: Float = inverse ? -1 : 1
        table.cos.withUnsafeBufferPointer { cosTable in
            table.sin.withUnsafeBufferPointer { sinTable in
                let cosBase = cosTable.baseAddress!, sinBase = sinTable.baseAddress!
                parallelFor(R, minimumPerThread: 64) { r in
                    let p = positions.map { Int($0[r]) } ?? r % T
                    let cs = cosBase + p * half, sn = sinBase + p * half
                    for h in 0..<H {
                        let v = x + r * rowStride + h * HS
                        switch layout {
                        case .halfSplit:
                            for i in 0..<half {
                                let a = v[i], b = v[i + half], c = cs[i], s = sign * sn[i]
                                v[i] = a * c - b * s
                                v[i + half] = b * c + a * s
                            }
                        case .interleaved:
                            for i in 0..<half {
                                let a = v[2 * i], b = v[2 * i + 1], c = cs[i], s = sign * sn[i]
                                v[2 * i] = a * c - b * s
                                v[2 * i + 1] = b * c + a * s
                            }
                        }
                    }
                }
            }
        }
    }

    /// Naive reference: rotates one head vector at position p, angles computed in Double.
    public static func reference(_ v: [Float], position p: Int, base: Double, layout: RotaryLayout) -> [Float] {
        let HS = v.count, half = HS / 2
        var out = v
        for i in 0..<half {
            let angle = Double(p) * Foundation.pow(base, -Double(2 * i) / Double(HS))
            let (ia, ib) = layout == .halfSplit ? (i, i + half) : (2 * i, 2 * i + 1)
            let a = Double(v[ia]), b = Double(v[ib])
            out[ia] = Float(a * Foundation.cos(angle) - b * Foundation.sin(angle))
            out[ib] = Float(b * Foundation.cos(angle) + a * Foundation.sin(angle))
        }
        return out
    }
}
