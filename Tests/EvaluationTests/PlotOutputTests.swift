// The plots: the scatter plot's SVG (points, axis titles, legend), and its PNG as a real render by
// rsvg-convert — decoded back (size, not blank) and compared with a render of the same SVG without
// its text, so the text pixels are known to be there.

import Foundation
import XCTest
@testable import Evaluation

/// PNG decoding for tests, by python3's zlib (PNG filters undone here): size and RGB rows.
enum PNGTestDecoder {
    struct Image {
        var width: Int
        var height: Int
        /// (height, width, 3) RGB.
        var pixels: [UInt8]
        func rgb(_ x: Int, _ y: Int) -> [UInt8] { let i = 3 * (y * width + x); return Array(pixels[i..<(i + 3)]) }
        /// Whether (x, y) is not (near) white.
        func isInk(_ x: Int, _ y: Int) -> Bool { rgb(x, y).contains { $0 < 200 } }
    }

    static let script = """
    import json, struct, sys, zlib
    b = open(sys.argv[1], 'rb').read()
    assert b[:8] == b'\\x89PNG\\r\\n\\x1a\\n', 'not a PNG'
    i, idat, ihdr = 8, b'', None
    while i < len(b):
        n, = struct.unpack('>I', b[i:i+4]); t = b[i+4:i+8]; d = b[i+8:i+8+n]
        assert struct.unpack('>I', b[i+8+n:i+12+n])[0] == zlib.crc32(t + d), 'bad CRC'
        if t == b'IHDR': ihdr = struct.unpack('>IIBBBBB', d)
        if t == b'IDAT': idat += d
        i += 12 + n
    w, h, depth, ctype, _, _, interlace = ihdr
    assert depth == 8 and interlace == 0 and ctype in (2, 6), ihdr
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat); stride = w * bpp; prev = bytearray(stride); out = bytearray()
    for r in range(h):
        f = raw[r * (stride + 1)]; line = bytearray(raw[r * (stride + 1) + 1:(r + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0; up = prev[x]; c = prev[x - bpp] if x >= bpp else 0
            if f == 1: line[x] = (line[x] + a) & 255
            elif f == 2: line[x] = (line[x] + up) & 255
            elif f == 3: line[x] = (line[x] + (a + up) // 2) & 255
            elif f == 4:
                p = a + up - c; pa, pb, pc = abs(p - a), abs(p - up), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else (up if pb <= pc else c))) & 255
        prev = line
        for x in range(w):
            px = line[x * bpp:(x + 1) * bpp]
            alpha = px[3] if bpp == 4 else 255
            out += bytes(round(v * alpha / 255 + 255 * (1 - alpha / 255)) for v in px[:3])
    sys.stdout.write(json.dumps({'w': w, 'h': h}) + '\\n'); sys.stdout.flush()
    sys.stdout.buffer.write(bytes(out))
    """

    /// Decodes a PNG file (alpha composited on white).
    static func decode(_ url: URL) throws -> Image {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, url.path]
        let pipe = Pipe(), err = Pipe()
        p.standardOutput = pipe
        p.standardError = err
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0, let newline = data.firstIndex(of: 10) else {
            throw XCTSkip("python3 could not decode \(url.path): \(message)")
        }
        let header = try JSONSerialization.jsonObject(with: data[..<newline]) as! [String: Int]
        return Image(width: header["w"]!, height: header["h"]!, pixels: Array(data[(newline + 1)...]))
    }
}

final class PlotOutputTests: XCTestCase {
    lazy var directory: URL = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-plot-tests-\(getpid())")
        try? FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }()

    override func tearDown() { try? FileManager.default.removeItem(at: directory) }

    let plot = ScatterPlot(points: [ScatterPoint(label: "reference", x: 0, y: 0, xInterval: -0.2...0.1, yInterval: -0.1...0.2),
                                    ScatterPoint(label: "mocan <λ=0.8>", x: 1, y: 1),
                                    ScatterPoint(label: "pecan", x: 0.5, y: -1)],
                           title: "Helpfulness against harmlessness", xTitle: "harmlessness: mean −cost", yTitle: "helpfulness: mean reward")

    func testAxisTicksAreNice() {
        // [0, 1] padded by 5 % → [−0.05, 1.05]; 1.1 / 5 = 0.22 → step 0.5; widened to [−0.5, 1.5].
        let a = PlotAxis.covering([0, 1])
        XCTAssertEqual(a.step, 0.5, accuracy: 1e-12)
        XCTAssertEqual(a.lo, -0.5, accuracy: 1e-12)
        XCTAssertEqual(a.hi, 1.5, accuracy: 1e-12)
        XCTAssertEqual(a.ticks.count, 5)
        let b = PlotAxis.covering([3, 2])
        XCTAssertEqual(b.lo, 1.5, accuracy: 1e-12)
        XCTAssertEqual(b.hi, 3.5, accuracy: 1e-12)
        let c = PlotAxis.covering([0.25])
        XCTAssertLessThan(c.lo, 0.25)
        XCTAssertGreaterThan(c.hi, 0.25)
        XCTAssertEqual(PlotAxis.tickLabel(-0.0, step: 0.5), "0.0")
        XCTAssertEqual(PlotAxis.tickLabel(1.5, step: 0.5), "1.5")
        XCTAssertEqual(PlotAxis.tickLabel(20, step: 10), "20")
    }

    func testSVGHasPointsTitlesAndALegend() {
        let svg = plot.svg()
        XCTAssertEqual(svg.components(separatedBy: "<circle class=\"point\"").count - 1, 3)
        XCTAssertEqual(svg.components(separatedBy: "class=\"legend\"").count - 1, 3, "one legend entry per model")
        XCTAssertTrue(svg.contains(">1  reference<") && svg.contains(">2  mocan &lt;λ=0.8&gt;<") && svg.contains(">3  pecan<"), svg)
        XCTAssertTrue(svg.contains(">harmlessness: mean −cost<") && svg.contains(">helpfulness: mean reward<"), "axis titles")
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"))
        // Point 2 at data (1, 1): x axis [−0.5, 1.5], y axis [−1.5, 1.5] over the plot area 80…590 × 44…422.
        let p = plot.pixel(x: 1, y: 1)
        XCTAssertEqual(p.x, 80 + 0.75 * 510, accuracy: 1e-9)
        XCTAssertEqual(p.y, 422 - 2.5 / 3 * 378, accuracy: 1e-9)
    }

    func testMissingRendererNamesThePackage() {
        XCTAssertThrowsError(try SVGRenderer(environment: ["PATH": "/nonexistent"])) {
            XCTAssertTrue("\($0)".contains("librsvg2-bin"), "\($0)")
            XCTAssertTrue("\($0)".contains("rsvg-convert"), "\($0)")
        }
    }

    /// The PNG is rsvg-convert's render of the SVG: the SVG's size, not blank, with ink where the
    /// points are, and with text: a render of the same SVG without its `<text>` elements differs from
    /// it in the title, the axis titles and the legend.
    func testPNGIsARenderOfTheSVGWithItsText() throws {
        let renderer = try SVGRenderer()
        let svg = plot.svg()
        let withText = directory.appendingPathComponent("plot.png"), withoutText = directory.appendingPathComponent("bare.png")
        try renderer.write(svg, svg: directory.appendingPathComponent("plot.svg"), png: withText)
        let bare = svg.replacingOccurrences(of: "<text[^>]*>[^<]*</text>", with: "", options: .regularExpression)
        XCTAssertFalse(bare.contains("<text"))
        try renderer.write(bare, svg: directory.appendingPathComponent("bare.svg"), png: withoutText)
        let image = try PNGTestDecoder.decode(withText), plain = try PNGTestDecoder.decode(withoutText)
        XCTAssertEqual([image.width, image.height], [plot.width, plot.height], "the PNG has the SVG's size")
        let ink = (0..<image.height).reduce(0) { sum, y in sum + (0..<image.width).filter { image.isInk($0, y) }.count }
        XCTAssertGreaterThan(ink, 2000, "the render is not blank (\(ink) inked pixels)")
        let q = plot.pixel(x: 1, y: 1)
        XCTAssertEqual(image.rgb(Int(q.x), Int(q.y)), [0xd6, 0x27, 0x28], "point 2 drawn in its colour at its position")

        /// Pixels inked with text but not without, in a rectangle.
        func textPixels(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int) -> Int {
            var n = 0
            for y in y0..<y1 { for x in x0..<x1 where image.isInk(x, y) && !plain.isInk(x, y) { n += 1 } }
            return n
        }
        let area = (left: Int(plot.margins.left), right: plot.width - Int(plot.margins.right), bottom: plot.height - Int(plot.margins.bottom))
        XCTAssertGreaterThan(textPixels(area.left, 0, area.right, 34), 150, "the title is drawn")
        XCTAssertGreaterThan(textPixels(area.left, area.bottom + 25, area.right, area.bottom + 48), 100, "the x-axis title is drawn")
        XCTAssertGreaterThan(textPixels(0, 60, 30, area.bottom), 100, "the rotated y-axis title is drawn")
        for i in 0..<3 {
            let y = Int(plot.margins.top) + 34 + 22 * i
            XCTAssertGreaterThan(textPixels(area.right + 40, y - 14, plot.width, y + 4), 40, "legend entry \(i + 1) (the model's name) is drawn")
        }
    }
}
