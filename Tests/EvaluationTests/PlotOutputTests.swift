// The PNG encoder decoded back by Python's zlib (signature, IHDR, CRCs, pixels), CRC-32 check values,
// the plot's axes and ticks, and the SVG's points.

import Foundation
import XCTest
@testable import Evaluation

final class PlotOutputTests: XCTestCase {
    func testCRC32CheckValues() {
        XCTAssertEqual(PNGWriter.crc32(Array("123456789".utf8)), 0xCBF4_3926, "the CRC-32 check value")
        XCTAssertEqual(PNGWriter.crc32([UInt8]()), 0)
        XCTAssertEqual(PNGWriter.crc32(Array("IEND".utf8)), 0xAE42_6082, "every PNG ends with this CRC")
    }

    /// Decodes a PNG with python3 (zlib, struct): returns its chunks and rows as JSON.
    func decodeWithPython(_ png: [UInt8]) throws -> [String: Any] {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-png-\(UUID().uuidString).png")
        try Data(png).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let script = """
        import json, struct, sys, zlib
        b = open(sys.argv[1], 'rb').read()
        out = {'signature': list(b[:8]), 'chunks': []}
        i, idat = 8, b''
        while i < len(b):
            n, = struct.unpack('>I', b[i:i+4]); t = b[i+4:i+8]; d = b[i+8:i+8+n]; crc, = struct.unpack('>I', b[i+8+n:i+12+n])
            out['chunks'].append({'type': t.decode(), 'length': n, 'crcOK': crc == zlib.crc32(t + d)})
            if t == b'IHDR': out['ihdr'] = list(struct.unpack('>IIBBBBB', d))
            if t == b'IDAT': idat += d
            i += 12 + n
        raw = zlib.decompress(idat)
        w, h = out['ihdr'][0], out['ihdr'][1]
        rows = [raw[r*(1+3*w):(r+1)*(1+3*w)] for r in range(h)]
        out['filters'] = [r[0] for r in rows]
        out['pixels'] = [[list(r[1+3*x:4+3*x]) for x in range(w)] for r in rows]
        print(json.dumps(out))
        """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, file.path]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw XCTSkip("python3 could not decode the PNG (is python3 installed?)") }
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func testPNGDecodesBack() throws {
        var image = RGBImage(width: 5, height: 3)
        image[0, 0] = RGB(255, 0, 0)
        image[4, 0] = RGB(0, 255, 0)
        image[2, 1] = RGB(0, 0, 255)
        image[4, 2] = RGB(12, 34, 56)
        let decoded = try decodeWithPython(try PNGWriter.encode(image))
        XCTAssertEqual(decoded["signature"] as? [Int], [137, 80, 78, 71, 13, 10, 26, 10])
        let chunks = try XCTUnwrap(decoded["chunks"] as? [[String: Any]])
        XCTAssertEqual(chunks.map { $0["type"] as? String }, ["IHDR", "IDAT", "IEND"])
        XCTAssertTrue(chunks.allSatisfy { $0["crcOK"] as? Bool == true }, "\(chunks)")
        XCTAssertEqual(chunks[0]["length"] as? Int, 13)
        XCTAssertEqual(decoded["ihdr"] as? [Int], [5, 3, 8, 2, 0, 0, 0], "5×3, 8-bit RGB, deflate, filter 0, no interlace")
        XCTAssertEqual(decoded["filters"] as? [Int], [0, 0, 0])
        let pixels = try XCTUnwrap(decoded["pixels"] as? [[[Int]]])
        XCTAssertEqual(pixels[0][0], [255, 0, 0])
        XCTAssertEqual(pixels[0][4], [0, 255, 0])
        XCTAssertEqual(pixels[1][2], [0, 0, 255])
        XCTAssertEqual(pixels[2][4], [12, 34, 56])
        XCTAssertEqual(pixels[1][1], [255, 255, 255])
    }

    func testAxisTicksAreNice() {
        // [0, 1] padded by 5 % → [−0.05, 1.05]; 1.1 / 5 = 0.22 → step 0.5; widened to [−0.5, 1.5].
        let a = ScatterPlot.axis([0, 1])
        XCTAssertEqual(a.step, 0.5, accuracy: 1e-12)
        XCTAssertEqual(a.lo, -0.5, accuracy: 1e-12)
        XCTAssertEqual(a.hi, 1.5, accuracy: 1e-12)
        XCTAssertEqual(a.ticks.count, 5)
        // [2, 3] → [1.95, 3.05]; 0.22 → 0.5; [1.5, 3.5].
        let b = ScatterPlot.axis([3, 2])
        XCTAssertEqual(b.lo, 1.5, accuracy: 1e-12)
        XCTAssertEqual(b.hi, 3.5, accuracy: 1e-12)
        // One value: a range around it.
        let c = ScatterPlot.axis([0.25])
        XCTAssertLessThan(c.lo, 0.25)
        XCTAssertGreaterThan(c.hi, 0.25)
        XCTAssertEqual(ScatterPlot.tickLabel(-0.0, step: 0.5), "0.0")
        XCTAssertEqual(ScatterPlot.tickLabel(1.5, step: 0.5), "1.5")
        XCTAssertEqual(ScatterPlot.tickLabel(20, step: 10), "20")
    }

    func testPlotHasAPointPerModel() throws {
        let points = [ScatterPoint(label: "reference", x: 0, y: 0), ScatterPoint(label: "mocan <λ=0.8>", x: 1, y: 1),
                      ScatterPoint(label: "pecan", x: 0.5, y: -1)]
        let plot = ScatterPlot(points: points, title: "t", xTitle: "harmlessness", yTitle: "helpfulness")
        let svg = plot.svg()
        XCTAssertEqual(svg.components(separatedBy: "<circle class=\"point\"").count - 1, 3)
        XCTAssertTrue(svg.contains(">1 reference<") && svg.contains(">2 mocan &lt;λ=0.8&gt;<") && svg.contains(">3 pecan<"))
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"))

        // Point 2 at data (1, 1): x axis [−0.5, 1.5] and y axis [−1.5, 1.5] (from [−1.1, 1.1], step 0.5) over
        // the plot area 80…610 × 40…420 → pixel (80 + 0.75·530, 420 − (2.5/3)·380) = (477.5, 103.33).
        let p = plot.pixel(x: 1, y: 1)
        XCTAssertEqual(p.x, 477.5, accuracy: 1e-9)
        XCTAssertEqual(p.y, 420 - 2.5 / 3 * 380, accuracy: 1e-9)
        let image = plot.raster()
        XCTAssertEqual(image[478, 103], ScatterPlot.palette[1], "point 2 drawn in its colour")
        let q = plot.pixel(x: 0, y: 0)
        XCTAssertEqual(image[Int(q.x.rounded()), Int(q.y.rounded())], ScatterPlot.palette[0])
        XCTAssertEqual(image[80, 300], .black, "the y axis")
        XCTAssertEqual(image[300, 420], .black, "the x axis")
        XCTAssertEqual(image[630, 10], .white, "background")
        let decoded = try decodeWithPython(try PNGWriter.encode(image))
        XCTAssertEqual(decoded["ihdr"] as? [Int], [640, 480, 8, 2, 0, 0, 0])
        let pixels = try XCTUnwrap(decoded["pixels"] as? [[[Int]]])
        let c = ScatterPlot.palette[1]
        XCTAssertEqual(pixels[103][478], [Int(c.r), Int(c.g), Int(c.b)])
    }
}
