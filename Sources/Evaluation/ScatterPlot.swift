// A labelled scatter plot (helpfulness against harmlessness, one point per model) as SVG and as an
// RGB raster for PNG.

import Foundation
import Datasets

/// One labelled point.
public struct ScatterPoint: Equatable, Sendable {
    public var label: String
    public var x: Double
    public var y: Double
    public init(label: String, x: Double, y: Double) { self.label = label; self.x = x; self.y = y }
}

/// A scatter plot with linear axes and "nice" ticks (1, 2 or 5 × 10^k).
///
/// The SVG shows everything: axes, ticks and tick labels, axis titles, and each point with its label.
/// The PNG raster draws axes, ticks, grid lines, tick labels and points, but text only in a built-in
/// 3×5 bitmap font of digits, '.', '-' (scaled ×2): each point is labelled with its 1-based number,
/// and the SVG's legend ("1 reference", "2 …") maps numbers to names; axis titles and model names are
/// not drawn in the PNG.
public struct ScatterPlot {
    public var points: [ScatterPoint]
    public var title: String
    public var xTitle: String
    public var yTitle: String
    public var width = 640
    public var height = 480
    /// Plot-area margins in pixels: left, right, top, bottom.
    public var margins = (left: 80, right: 30, top: 40, bottom: 60)

    public init(points: [ScatterPoint], title: String, xTitle: String, yTitle: String) {
        self.points = points; self.title = title; self.xTitle = xTitle; self.yTitle = yTitle
    }

    /// Point colours, cycled.
    public static let palette = [RGB(31, 119, 180), RGB(214, 39, 40), RGB(44, 160, 44), RGB(255, 127, 14),
                                 RGB(148, 103, 189), RGB(140, 86, 75), RGB(227, 119, 194), RGB(23, 190, 207)]

    /// An axis: its range and tick positions.
    public struct Axis: Equatable {
        public var lo: Double
        public var hi: Double
        public var ticks: [Double]
        public var step: Double
    }

    /// A range covering `values` with 5 % padding, widened to multiples of a nice step (about 5 ticks).
    public static func axis(_ values: [Double]) -> Axis {
        let finite = values.filter(\.isFinite)
        var lo = finite.min() ?? 0, hi = finite.max() ?? 1
        if hi - lo < 1e-12 { let pad = max(abs(lo) * 0.1, 0.5); lo -= pad; hi += pad }
        let pad = (hi - lo) * 0.05
        lo -= pad; hi += pad
        let raw = (hi - lo) / 5
        let magnitude = pow(10, floor(log10(raw)))
        let step = ([1.0, 2, 5, 10].first { $0 * magnitude >= raw } ?? 10) * magnitude
        let first = floor(lo / step), last = ceil(hi / step)
        let ticks = stride(from: first, through: last + 0.5, by: 1).map { $0 * step }
        return Axis(lo: first * step, hi: last * step, ticks: ticks, step: step)
    }

    public var xAxis: Axis { Self.axis(points.map(\.x)) }
    public var yAxis: Axis { Self.axis(points.map(\.y)) }

    /// The pixel position of a data point (y grows downwards).
    public func pixel(x: Double, y: Double) -> (x: Double, y: Double) {
        let xa = xAxis, ya = yAxis
        let w = Double(width - margins.left - margins.right), h = Double(height - margins.top - margins.bottom)
        return (Double(margins.left) + (x - xa.lo) / (xa.hi - xa.lo) * w,
                Double(height - margins.bottom) - (y - ya.lo) / (ya.hi - ya.lo) * h)
    }

    /// A tick label with as many decimals as the step needs.
    public static func tickLabel(_ v: Double, step: Double) -> String {
        let decimals = max(0, min(6, Int(-floor(log10(step) + 1e-9))))
        let s = String(format: "%.\(decimals)f", v)
        return s.hasPrefix("-") && Double(s) == 0 ? String(s.dropFirst()) : s
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// The SVG document: one `<circle class="point">` per point, labelled with its number and name.
    public func svg() -> String {
        let xa = xAxis, ya = yAxis
        let left = margins.left, right = width - margins.right, top = margins.top, bottom = height - margins.bottom
        func f(_ v: Double) -> String { String(format: "%.2f", v) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(width / 2)\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">\(Self.escape(title))</text>\n"
        for t in xa.ticks {
            let p = pixel(x: t, y: ya.lo).x
            s += "<line x1=\"\(f(p))\" y1=\"\(top)\" x2=\"\(f(p))\" y2=\"\(bottom)\" stroke=\"#e0e0e0\"/>"
            s += "<line x1=\"\(f(p))\" y1=\"\(bottom)\" x2=\"\(f(p))\" y2=\"\(bottom + 5)\" stroke=\"black\"/>"
            s += "<text x=\"\(f(p))\" y=\"\(bottom + 18)\" text-anchor=\"middle\">\(Self.tickLabel(t, step: xa.step))</text>\n"
        }
        for t in ya.ticks {
            let p = pixel(x: xa.lo, y: t).y
            s += "<line x1=\"\(left)\" y1=\"\(f(p))\" x2=\"\(right)\" y2=\"\(f(p))\" stroke=\"#e0e0e0\"/>"
            s += "<line x1=\"\(left - 5)\" y1=\"\(f(p))\" x2=\"\(left)\" y2=\"\(f(p))\" stroke=\"black\"/>"
            s += "<text x=\"\(left - 8)\" y=\"\(f(p + 4))\" text-anchor=\"end\">\(Self.tickLabel(t, step: ya.step))</text>\n"
        }
        s += "<line x1=\"\(left)\" y1=\"\(bottom)\" x2=\"\(right)\" y2=\"\(bottom)\" stroke=\"black\"/>"
        s += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(bottom)\" stroke=\"black\"/>\n"
        s += "<text x=\"\((left + right) / 2)\" y=\"\(height - 16)\" text-anchor=\"middle\">\(Self.escape(xTitle))</text>\n"
        s += "<text x=\"18\" y=\"\((top + bottom) / 2)\" text-anchor=\"middle\" transform=\"rotate(-90 18 \((top + bottom) / 2))\">\(Self.escape(yTitle))</text>\n"
        for (i, pt) in points.enumerated() {
            let p = pixel(x: pt.x, y: pt.y)
            let colour = Self.palette[i % Self.palette.count].hex
            s += "<circle class=\"point\" cx=\"\(f(p.x))\" cy=\"\(f(p.y))\" r=\"5\" fill=\"\(colour)\"><title>\(Self.escape(pt.label)): (\(pt.x), \(pt.y))</title></circle>"
            s += "<text x=\"\(f(p.x + 8))\" y=\"\(f(p.y - 6))\">\(i + 1) \(Self.escape(pt.label))</text>\n"
        }
        s += "</svg>\n"
        return s
    }

    /// The 3×5 glyphs of the PNG's tick and point labels (rows top to bottom, 3 bits each, MSB left).
    static let glyphs: [Character: [UInt8]] = [
        "0": [7, 5, 5, 5, 7], "1": [2, 6, 2, 2, 7], "2": [7, 1, 7, 4, 7], "3": [7, 1, 7, 1, 7], "4": [5, 5, 7, 1, 1],
        "5": [7, 4, 7, 1, 7], "6": [7, 4, 7, 5, 7], "7": [7, 1, 1, 1, 1], "8": [7, 5, 7, 5, 7], "9": [7, 5, 7, 1, 7],
        ".": [0, 0, 0, 0, 2], "-": [0, 0, 7, 0, 0],
    ]

    /// Draws `text` (digits, '.', '-') with its top-left corner at (x, y), scale 2 (8 px per character).
    static func draw(_ text: String, x: Int, y: Int, into image: inout RGBImage, _ c: RGB = .black) {
        for (k, ch) in text.enumerated() {
            guard let rows = glyphs[ch] else { continue }
            for (row, bits) in rows.enumerated() {
                for col in 0..<3 where bits & (4 >> UInt8(col)) != 0 {
                    image.fill(x0: x + 8 * k + 2 * col, y0: y + 2 * row, x1: x + 8 * k + 2 * col + 1, y1: y + 2 * row + 1, c)
                }
            }
        }
    }

    /// The raster image for PNG (see the type's doc for what it shows).
    public func raster() -> RGBImage {
        var image = RGBImage(width: width, height: height)
        let xa = xAxis, ya = yAxis
        let left = margins.left, right = width - margins.right, top = margins.top, bottom = height - margins.bottom
        let grid = RGB(224, 224, 224)
        for t in xa.ticks {
            let p = Int(pixel(x: t, y: ya.lo).x.rounded())
            image.fill(x0: p, y0: top, x1: p, y1: bottom, grid)
            image.fill(x0: p, y0: bottom, x1: p, y1: bottom + 5, .black)
            let label = Self.tickLabel(t, step: xa.step)
            Self.draw(label, x: p - 4 * label.count, y: bottom + 10, into: &image)
        }
        for t in ya.ticks {
            let p = Int(pixel(x: xa.lo, y: t).y.rounded())
            image.fill(x0: left, y0: p, x1: right, y1: p, grid)
            image.fill(x0: left - 5, y0: p, x1: left, y1: p, .black)
            let label = Self.tickLabel(t, step: ya.step)
            Self.draw(label, x: left - 9 - 8 * label.count, y: p - 5, into: &image)
        }
        image.fill(x0: left, y0: bottom, x1: right, y1: bottom, .black)
        image.fill(x0: left, y0: top, x1: left, y1: bottom, .black)
        for (i, pt) in points.enumerated() where pt.x.isFinite && pt.y.isFinite {
            let p = pixel(x: pt.x, y: pt.y)
            let cx = Int(p.x.rounded()), cy = Int(p.y.rounded())
            image.disc(cx: cx, cy: cy, r: 5, Self.palette[i % Self.palette.count])
            Self.draw(String(i + 1), x: cx + 8, y: cy - 16, into: &image)
        }
        return image
    }
}
