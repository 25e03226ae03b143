// The pieces every plot of `dualign eval` shares: an SVG text builder, linear axes with "nice" ticks,
// a colour palette and text escaping. Plots are written as SVG and rendered to PNG by `SVGRenderer`.

import Foundation

/// A linear axis: its range and tick positions (1, 2 or 5 × 10^k apart).
public struct PlotAxis: Equatable, Sendable {
    public var lo: Double
    public var hi: Double
    public var ticks: [Double]
    public var step: Double

    /// A range covering `values` with 5 % padding, widened to multiples of a nice step (about 5 ticks);
    /// non-finite values are ignored, and no values give [0, 1].
    public static func covering(_ values: [Double]) -> PlotAxis {
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
        return PlotAxis(lo: first * step, hi: last * step, ticks: ticks, step: step)
    }

    /// A tick label with as many decimals as the step needs ("-0.0" written "0.0").
    public static func tickLabel(_ v: Double, step: Double) -> String {
        let decimals = max(0, min(6, Int(-floor(log10(step) + 1e-9))))
        let s = String(format: "%.\(decimals)f", v)
        return s.hasPrefix("-") && Double(s) == 0 ? String(s.dropFirst()) : s
    }

    /// The fraction of the way from `lo` to `hi` where `v` lies.
    public func fraction(_ v: Double) -> Double { (v - lo) / (hi - lo) }
}

/// An SVG document under construction (coordinates in pixels, y downwards).
public struct SVGCanvas {
    public let width: Int
    public let height: Int
    public private(set) var body = ""

    /// Colours for series and points, cycled.
    public static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

    public init(width: Int, height: Int) {
        self.width = width; self.height = height
        body += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    }

    /// Escapes text for SVG content and attributes.
    public static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// A coordinate with two decimals.
    public static func f(_ v: Double) -> String { String(format: "%.2f", v) }

    public mutating func raw(_ s: String) { body += s }

    public mutating func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, stroke: String = "black", width: Double = 1) {
        body += "<line x1=\"\(Self.f(x1))\" y1=\"\(Self.f(y1))\" x2=\"\(Self.f(x2))\" y2=\"\(Self.f(y2))\" stroke=\"\(stroke)\" stroke-width=\"\(Self.f(width))\"/>\n"
    }

    /// Text; `anchor` is start, middle or end; `rotate` turns it about its anchor point (degrees).
    public mutating func text(_ s: String, x: Double, y: Double, anchor: String = "start", size: Double = 12,
                              rotate: Double? = nil, cssClass: String? = nil, weight: String? = nil) {
        var attrs = "x=\"\(Self.f(x))\" y=\"\(Self.f(y))\" text-anchor=\"\(anchor)\" font-size=\"\(Self.f(size))\""
        if let rotate { attrs += " transform=\"rotate(\(Self.f(rotate)) \(Self.f(x)) \(Self.f(y)))\"" }
        if let cssClass { attrs += " class=\"\(cssClass)\"" }
        if let weight { attrs += " font-weight=\"\(weight)\"" }
        body += "<text \(attrs)>\(Self.escape(s))</text>\n"
    }

    public mutating func circle(cx: Double, cy: Double, r: Double, fill: String, cssClass: String? = nil, title: String? = nil) {
        let cls = cssClass.map { " class=\"\($0)\"" } ?? ""
        let t = title.map { "<title>\(Self.escape($0))</title>" } ?? ""
        body += "<circle\(cls) cx=\"\(Self.f(cx))\" cy=\"\(Self.f(cy))\" r=\"\(Self.f(r))\" fill=\"\(fill)\">\(t)</circle>\n"
    }

    /// A polyline through `points`.
    public mutating func polyline(_ points: [(Double, Double)], stroke: String, width: Double = 1.5, cssClass: String? = nil) {
        let cls = cssClass.map { " class=\"\($0)\"" } ?? ""
        let p = points.map { "\(Self.f($0.0)),\(Self.f($0.1))" }.joined(separator: " ")
        body += "<polyline\(cls) points=\"\(p)\" fill=\"none\" stroke=\"\(stroke)\" stroke-width=\"\(Self.f(width))\"/>\n"
    }

    public mutating func rect(x: Double, y: Double, w: Double, h: Double, fill: String = "none", stroke: String = "none") {
        body += "<rect x=\"\(Self.f(x))\" y=\"\(Self.f(y))\" width=\"\(Self.f(w))\" height=\"\(Self.f(h))\" fill=\"\(fill)\" stroke=\"\(stroke)\"/>\n"
    }

    /// A plot frame: grid, ticks and tick labels of both axes inside the rectangle (left, top, right, bottom).
    public mutating func frame(x: PlotAxis, y: PlotAxis, left: Double, top: Double, right: Double, bottom: Double, tickSize: Double = 11) {
        for t in x.ticks {
            let p = left + x.fraction(t) * (right - left)
            line(p, top, p, bottom, stroke: "#e0e0e0")
            line(p, bottom, p, bottom + 5)
            text(PlotAxis.tickLabel(t, step: x.step), x: p, y: bottom + 17, anchor: "middle", size: tickSize)
        }
        for t in y.ticks {
            let p = bottom - y.fraction(t) * (bottom - top)
            line(left, p, right, p, stroke: "#e0e0e0")
            line(left - 5, p, left, p)
            text(PlotAxis.tickLabel(t, step: y.step), x: left - 8, y: p + 4, anchor: "end", size: tickSize)
        }
        line(left, bottom, right, bottom)
        line(left, top, left, bottom)
    }

    /// The finished document.
    public var document: String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" font-family=\"DejaVu Sans, sans-serif\" font-size=\"12\">\n"
            + body + "</svg>\n"
    }
}
