// A labelled scatter plot (helpfulness against harmlessness, one point per model, with confidence
// intervals as error bars and a legend) as SVG; `SVGRenderer` turns it into the PNG.

import Foundation

/// One labelled point, with optional interval ends on each axis.
public struct ScatterPoint: Equatable, Sendable {
    public var label: String
    public var x: Double
    public var y: Double
    public var xInterval: ClosedRange<Double>?
    public var yInterval: ClosedRange<Double>?

    public init(label: String, x: Double, y: Double, xInterval: ClosedRange<Double>? = nil, yInterval: ClosedRange<Double>? = nil) {
        self.label = label; self.x = x; self.y = y; self.xInterval = xInterval; self.yInterval = yInterval
    }
}

/// A scatter plot with linear axes, axis titles, error bars, numbered points and a legend that maps
/// each number and colour to a model name.
public struct ScatterPlot {
    public var points: [ScatterPoint]
    public var title: String
    public var xTitle: String
    public var yTitle: String
    /// A line under the plot saying what the bars are.
    public var note: String?
    public var width = 820
    public var height = 500
    /// Plot-area margins in pixels: left, right (the legend sits there), top, bottom.
    public var margins = (left: 80.0, right: 230.0, top: 44.0, bottom: 78.0)

    public init(points: [ScatterPoint], title: String, xTitle: String, yTitle: String, note: String? = nil) {
        self.points = points; self.title = title; self.xTitle = xTitle; self.yTitle = yTitle; self.note = note
    }

    /// Every value an axis must cover (points and interval ends).
    func extent(_ value: (ScatterPoint) -> Double, _ interval: (ScatterPoint) -> ClosedRange<Double>?) -> [Double] {
        points.flatMap { p in [value(p)] + (interval(p).map { [$0.lowerBound, $0.upperBound] } ?? []) }
    }

    public var xAxis: PlotAxis { PlotAxis.covering(extent(\.x, \.xInterval)) }
    public var yAxis: PlotAxis { PlotAxis.covering(extent(\.y, \.yInterval)) }

    /// The plot area: left, top, right, bottom.
    var area: (left: Double, top: Double, right: Double, bottom: Double) {
        (margins.left, margins.top, Double(width) - margins.right, Double(height) - margins.bottom)
    }

    /// The pixel position of a data point (y grows downwards).
    public func pixel(x: Double, y: Double) -> (x: Double, y: Double) {
        let a = area
        return (a.left + xAxis.fraction(x) * (a.right - a.left), a.bottom - yAxis.fraction(y) * (a.bottom - a.top))
    }

    /// The SVG document: one `<circle class="point">` per point, its number beside it, error bars,
    /// axis titles, and a legend (`class="legend"`) with one entry per point.
    public func svg() -> String {
        let a = area
        var c = SVGCanvas(width: width, height: height)
        c.text(title, x: (a.left + a.right) / 2, y: 26, anchor: "middle", size: 16, weight: "bold")
        c.frame(x: xAxis, y: yAxis, left: a.left, top: a.top, right: a.right, bottom: a.bottom)
        c.text(xTitle, x: (a.left + a.right) / 2, y: a.bottom + 40, anchor: "middle", size: 13, cssClass: "axis-title")
        c.text(yTitle, x: 22, y: (a.top + a.bottom) / 2, anchor: "middle", size: 13, rotate: -90, cssClass: "axis-title")
        if let note { c.text(note, x: a.left, y: Double(height) - 12, size: 11) }
        for (i, pt) in points.enumerated() where pt.x.isFinite && pt.y.isFinite {
            let colour = SVGCanvas.palette[i % SVGCanvas.palette.count]
            let p = pixel(x: pt.x, y: pt.y)
            if let r = pt.xInterval {
                let lo = pixel(x: r.lowerBound, y: pt.y).x, hi = pixel(x: r.upperBound, y: pt.y).x
                c.line(lo, p.y, hi, p.y, stroke: colour, width: 1.5)
                c.line(lo, p.y - 4, lo, p.y + 4, stroke: colour, width: 1.5)
                c.line(hi, p.y - 4, hi, p.y + 4, stroke: colour, width: 1.5)
            }
            if let r = pt.yInterval {
                let lo = pixel(x: pt.x, y: r.lowerBound).y, hi = pixel(x: pt.x, y: r.upperBound).y
                c.line(p.x, lo, p.x, hi, stroke: colour, width: 1.5)
                c.line(p.x - 4, lo, p.x + 4, lo, stroke: colour, width: 1.5)
                c.line(p.x - 4, hi, p.x + 4, hi, stroke: colour, width: 1.5)
            }
            c.circle(cx: p.x, cy: p.y, r: 6, fill: colour, cssClass: "point", title: "\(pt.label): (\(pt.x), \(pt.y))")
            c.text("\(i + 1)", x: p.x + 8, y: p.y - 7, size: 12, weight: "bold")
        }
        // The legend: number, colour and name of each model.
        let lx = a.right + 24
        c.rect(x: lx - 10, y: a.top - 6, w: margins.right - 30, h: Double(points.count) * 22 + 30, fill: "#fafafa", stroke: "#c0c0c0")
        c.text("Models", x: lx, y: a.top + 12, size: 13, weight: "bold")
        for (i, pt) in points.enumerated() {
            let y = a.top + 34 + Double(i) * 22
            c.circle(cx: lx + 6, cy: y - 4, r: 6, fill: SVGCanvas.palette[i % SVGCanvas.palette.count])
            c.text("\(i + 1)  \(pt.label)", x: lx + 18, y: y, size: 12, cssClass: "legend")
        }
        return c.document
    }
}
