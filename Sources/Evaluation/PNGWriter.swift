// A minimal PNG encoder for 8-bit RGB images (zlib through CZlib, CRC-32 per chunk), and the image
// type the plot rasteriser draws into.

import Foundation
import Datasets
import CZlib

/// An 8-bit RGB image, rows top to bottom, 3 bytes per pixel.
public struct RGBImage: Equatable, Sendable {
    public let width: Int
    public let height: Int
    /// `width · height · 3` bytes.
    public var pixels: [UInt8]

    /// An image filled with one colour.
    public init(width: Int, height: Int, fill: RGB = .white) {
        precondition(width > 0 && height > 0, "an image needs a positive size")
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) { pixels[3 * i] = fill.r; pixels[3 * i + 1] = fill.g; pixels[3 * i + 2] = fill.b }
    }

    /// The colour at (x, y).
    public subscript(x: Int, y: Int) -> RGB {
        get { let i = 3 * (y * width + x); return RGB(pixels[i], pixels[i + 1], pixels[i + 2]) }
        set { let i = 3 * (y * width + x); pixels[i] = newValue.r; pixels[i + 1] = newValue.g; pixels[i + 2] = newValue.b }
    }

    /// Sets (x, y) when it lies inside the image.
    public mutating func plot(_ x: Int, _ y: Int, _ c: RGB) {
        if x >= 0 && y >= 0 && x < width && y < height { self[x, y] = c }
    }

    /// Fills the rectangle [x0, x1] × [y0, y1] (clipped).
    public mutating func fill(x0: Int, y0: Int, x1: Int, y1: Int, _ c: RGB) {
        for y in max(0, min(y0, y1))...min(height - 1, max(y0, y1)) where max(0, min(x0, x1)) <= min(width - 1, max(x0, x1)) {
            for x in max(0, min(x0, x1))...min(width - 1, max(x0, x1)) { self[x, y] = c }
        }
    }

    /// A filled disc of radius `r` centred at (cx, cy).
    public mutating func disc(cx: Int, cy: Int, r: Int, _ c: RGB) {
        for dy in -r...r { for dx in -r...r where dx * dx + dy * dy <= r * r { plot(cx + dx, cy + dy, c) } }
    }
}

/// An 8-bit RGB colour.
public struct RGB: Equatable, Sendable {
    public var r: UInt8, g: UInt8, b: UInt8
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { self.r = r; self.g = g; self.b = b }
    public static let white = RGB(255, 255, 255)
    public static let black = RGB(0, 0, 0)
    /// `#rrggbb` for SVG.
    public var hex: String { String(format: "#%02x%02x%02x", r, g, b) }
}

/// Failure to compress image data.
public struct PNGError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// PNG encoding (colour type 2, bit depth 8, no interlace, filter 0 on every row).
public enum PNGWriter {
    /// The 8-byte PNG signature.
    public static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// The CRC-32 (ISO 3309, polynomial 0xEDB88320) table.
    static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// CRC-32 of `bytes` as PNG chunks use it.
    public static func crc32<S: Sequence>(_ bytes: S) -> UInt32 where S.Element == UInt8 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    static func bigEndian(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }

    /// One chunk: length, type, data, CRC-32 of type and data.
    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return bigEndian(UInt32(data.count)) + body + bigEndian(crc32(body))
    }

    /// The zlib stream (RFC 1950) of `bytes`, best compression.
    public static func deflate(_ bytes: [UInt8]) throws -> [UInt8] {
        var size = compressBound(uLong(bytes.count))
        var out = [UInt8](repeating: 0, count: Int(size))
        let status = bytes.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                compress2(dst.baseAddress, &size, src.baseAddress, uLong(bytes.count), Z_BEST_COMPRESSION)
            }
        }
        guard status == Z_OK else { throw PNGError(message: "zlib compress2 failed with status \(status)") }
        return Array(out.prefix(Int(size)))
    }

    /// The PNG file of `image`.
    public static func encode(_ image: RGBImage) throws -> [UInt8] {
        var raw: [UInt8] = []
        raw.reserveCapacity(image.height * (1 + 3 * image.width))
        for y in 0..<image.height {
            raw.append(0)   // filter type 0 (None)
            raw += image.pixels[(3 * y * image.width)..<(3 * (y + 1) * image.width)]
        }
        let header = bigEndian(UInt32(image.width)) + bigEndian(UInt32(image.height)) + [8, 2, 0, 0, 0]
        return signature + chunk("IHDR", header) + chunk("IDAT", try deflate(raw)) + chunk("IEND", [])
    }
}
