// Dequantization of GGUF tensor data (F32, F16, BF16, Q8_0, Q4_0, Q4_1) and half-float conversion.
//
// Block layouts (32 weights per block, little-endian, `d`/`m` are IEEE half floats):
//   Q8_0  34 B: f16 d, i8 q[32]          y[j] = d * q[j]
//   Q4_0  18 B: f16 d, u8 qs[16]         y[j] = ((qs[j] & 0xF) - 8) * d,  y[j+16] = ((qs[j] >> 4) - 8) * d
//   Q4_1  20 B: f16 d, f16 m, u8 qs[16]  y[j] = (qs[j] & 0xF) * d + m,    y[j+16] = (qs[j] >> 4) * d + m

import Foundation

#if _endian(big)
#error("GGUF reading assumes a little-endian host")
#endif

/// Converters from GGUF storage types to Float32; fast pointer loops, parallel over blocks.
public enum GGUFQuantization {
    /// Tensors with fewer elements than this are converted on the calling thread.
    static let parallelThreshold = 1 << 16

    /// Converts IEEE 754 half-precision bits to Float (exact; handles subnormals, inf and NaN).
    public static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = Int((h >> 10) & 0x1F)
        let mantissa = UInt32(h & 0x3FF)
        if exponent == 0 {
            // Zero or subnormal: mantissa * 2^-24.
            let magnitude = Float(mantissa) * Float(bitPattern: 0x3380_0000) // 2^-24
            return Float(bitPattern: sign | magnitude.bitPattern)
        }
        if exponent == 31 {
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        return Float(bitPattern: sign | (UInt32(exponent + 112) << 23) | (mantissa << 13))
    }

    /// Converts a Float to IEEE 754 half-precision bits, rounding to nearest even
    /// (overflow becomes infinity, NaN stays NaN).
    public static func floatToHalf(_ f: Float) -> UInt16 {
        let bits = f.bitPattern
        let sign = UInt16((bits >> 16) & 0x8000)
        let exponent = Int((bits >> 23) & 0xFF)
        var mantissa = bits & 0x7F_FFFF
        if exponent == 0xFF {
            return sign | 0x7C00 | (mantissa != 0 ? 0x200 | UInt16(mantissa >> 13) : 0)
        }
        let e = exponent - 127 + 15
        if e >= 31 { return sign | 0x7C00 }
        if e <= 0 {
            // Subnormal half (or zero): shift the implicit-one mantissa right, round to nearest even.
            if e < -10 { return sign }
            mantissa |= 0x80_0000
            let shift = UInt32(14 - e)
            let half = UInt32(1) << (shift - 1)
            let rest = mantissa & ((UInt32(1) << shift) - 1)
            var value = mantissa >> shift
            if rest > half || (rest == half && value & 1 == 1) { value += 1 }
            return sign | UInt16(value)
        }
        var value = UInt32(e) << 10 | (mantissa >> 13)
        let rest = mantissa & 0x1FFF
        if rest > 0x1000 || (rest == 0x1000 && value & 1 == 1) { value += 1 } // may carry into the exponent: correct
        return sign | UInt16(value)
    }

    /// All 65536 half values as Floats (256 KB), built once.
    static let halfTable: UnsafeMutablePointer<Float> = {
        let table = UnsafeMutablePointer<Float>.allocate(capacity: 65536)
        for i in 0..<65536 { table[i] = halfToFloat(UInt16(i)) }
        return table
    }()

    /// Converts `count` elements of `type` from `source` into `output`.
    ///
    /// The caller has checked that `type.canDequantize`, that `count` is a multiple of the block
    /// size and that `source` holds exactly `count / blockSize * blockBytes` bytes.
    static func dequantize(type: GGMLType, source: UnsafeRawBufferPointer, count: Int, into output: UnsafeMutablePointer<Float>) {
        guard count > 0, let src = source.baseAddress,
              let blockSize = type.blockSize, let blockBytes = type.blockBytes,
              count % blockSize == 0, source.count >= count / blockSize * blockBytes else { return }
        let blocks = count / blockSize
        let table = UnsafePointer(halfTable)
        let convert: (Int, Int) -> Void = { first, end in
            let s = src + first * blockBytes
            let o = output + first * blockSize
            let n = end - first
            switch type {
            case .f32: convertF32(s, o, n)
            case .f16: convertF16(s, o, n, table)
            case .bf16: convertBF16(s, o, n)
            case .q8_0: convertQ8_0(s, o, n, table)
            case .q4_0: convertQ4_0(s, o, n, table)
            case .q4_1: convertQ4_1(s, o, n, table)
            default: break
            }
        }
        if count < parallelThreshold {
            convert(0, blocks)
            return
        }
        let threads = max(1, ProcessInfo.processInfo.activeProcessorCount)
        let chunks = min(blocks, threads * 8)
        DispatchQueue.concurrentPerform(iterations: chunks) { i in
            convert(blocks * i / chunks, blocks * (i + 1) / chunks)
        }
    }

    private static func convertF32(_ s: UnsafeRawPointer, _ o: UnsafeMutablePointer<Float>, _ n: Int) {
        UnsafeMutableRawPointer(o).copyMemory(from: s, byteCount: n * 4)
    }

    private static func convertF16(_ s: UnsafeRawPointer, _ o: UnsafeMutablePointer<Float>, _ n: Int, _ table: UnsafePointer<Float>) {
        for i in 0..<n {
            o[i] = table[Int(s.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))]
        }
    }

    private static func convertBF16(_ s: UnsafeRawPointer, _ o: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n {
            o[i] = Float(bitPattern: UInt32(s.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
        }
    }

    private static func convertQ8_0(_ s: UnsafeRawPointer, _ o: UnsafeMutablePointer<Float>, _ blocks: Int, _ table: UnsafePointer<Float>) {
        for b in 0..<blocks {
            let block = s + b * 34
            let d = table[Int(block.loadUnaligned(as: UInt16.self))]
            let q = (block + 2).assumingMemoryBound(to: Int8.self)
            let y = o + b * 32
            for j in 0..<32 { y[j] = d * Float(q[j]) }
        }
    }

    private static func convertQ4_0(_ s: UnsafeRawPointer, _ o: UnsafeMutablePointer<Float>, _ blocks: Int, _ table: UnsafePointer<Float>) {
        for b in 0..<blocks {
            let block = s + b * 18
            let d = table[Int(block.loadUnaligned(as: UInt16.self))]
            let qs = (block + 2).assumingMemoryBound(to: UInt8.self)
            let y = o + b * 32
            for j in 0..<16 {
                let q = qs[j]
                y[j] = Float(Int32(q & 0xF) - 8) * d
                y[j + 16] = Float(Int32(q >> 4) - 8) * d
            }
        }
    }

    private static func convertQ4_1(_ s: UnsafeRawPointer, _ o: UnsafeMutablePointer<Float>, _ blocks: Int, _ table: UnsafePointer<Float>) {
        for b in 0..<blocks {
            let block = s + b * 20
            let d = table[Int(block.loadUnaligned(as: UInt16.self))]
            let m = table[Int(block.loadUnaligned(fromByteOffset: 2, as: UInt16.self))]
            let qs = (block + 4).assumingMemoryBound(to: UInt8.self)
            let y = o + b * 32
            for j in 0..<16 {
                let q = qs[j]
                y[j] = Float(q & 0xF) * d + m
                y[j + 16] = Float(q >> 4) * d + m
            }
        }
    }
}
