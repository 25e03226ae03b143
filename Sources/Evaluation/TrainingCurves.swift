// Training curves of alignment runs for the evaluation report: per stage, the loss and the reward
// margin over steps (`stages/<stage>/metrics.jsonl`), and λ over the dual's updates (`pipeline.jsonl`),
// drawn as one row of panels per run.

import Foundation
import Datasets

/// The curves of one training stage.
public struct StageCurves: Equatable, Sendable {
    /// The stage's directory name (`5-dpo`, `1.3-dpo`), or `train` for a plain training run.
    public var stage: String
    /// (step, training loss).
    public var loss: [CurvePoint]
    /// (step, reward margin): a DPO stage's `rewards/margins` (β times the chosen-minus-rejected
    /// log-ratio); a reward model's `rewards/chosen − rewards/rejected`; a cost model's
    /// `costs/unsafer − costs/safer` (how far the score model separates the pair).
    public var margins: [CurvePoint]
}

/// One point of a curve.
public struct CurvePoint: Equatable, Sendable {
    public var x: Double
    public var y: Double
    public init(_ x: Double, _ y: Double) { self.x = x; self.y = y }
}

/// The curves of one run directory.
public struct RunCurves: Equatable, Sendable {
    /// The run's name in the plot (its directory name).
    public var name: String
    public var stages: [StageCurves]
    /// λ after each dual update, in `pipeline.jsonl` order (x = 1, 2, …), with the record's stage.
    public var lambda: [CurvePoint]
    public var lambdaStages: [String]
}

/// Reads and draws training curves.
public enum TrainingCurves {
    /// Sort key of a stage directory: its leading numbers (`1.3-dpo` → [1, 3]), then its name.
    static func stageOrder(_ a: String, _ b: String) -> Bool {
        func numbers(_ s: String) -> [Int] {
            s.prefix { $0.isNumber || $0 == "." }.split(separator: ".").compactMap { Int($0) }
        }
        let na = numbers(a), nb = numbers(b)
        if na != nb { return na.lexicographicallyPrecedes(nb) }
        return a < b
    }

    /// The JSON objects of a JSONL file, one per non-blank line.
    ///
    /// - Throws: `PromptSetError` naming the file and line of a line that is not a JSON object.
    static func jsonLines(_ url: URL) throws -> [[String: Any]] {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw PromptSetError(file: url.path, "cannot read the file")
        }
        var out: [[String: Any]] = []
        for (i, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { continue }
            guard let o = (try? JSONSerialization.jsonObject(with: Data(t.utf8))) as? [String: Any] else {
                throw PromptSetError(file: url.path, line: i + 1, "is not a JSON object; a metrics log holds one JSON object per line (delete the broken line or rerun the stage)")
            }
            out.append(o)
        }
        return out
    }

    /// A finite number from a JSON value (metrics logs write non-finite values as strings).
    static func number(_ v: Any?) -> Double? {
        guard let n = v as? NSNumber else { return nil }
        let d = n.doubleValue
        return d.isFinite ? d : nil
    }

    /// The margin of one metrics line (see `StageCurves.margins`).
    static func margin(_ o: [String: Any]) -> Double? {
        if let m = number(o["rewards/margins"]) { return m }
        if let c = number(o["rewards/chosen"]), let r = number(o["rewards/rejected"]) { return c - r }
        if let u = number(o["costs/unsafer"]), let s = number(o["costs/safer"]) { return u - s }
        return nil
    }

    /// The curves of one stage's `metrics.jsonl`.
    public static func readStage(_ url: URL, stage: String) throws -> StageCurves {
        var loss: [CurvePoint] = [], margins: [CurvePoint] = []
        for o in try jsonLines(url) {
            guard let step = number(o["step"]) else { continue }
            if let l = number(o["loss"]) { loss.append(CurvePoint(step, l)) }
            if let m = margin(o) { margins.append(CurvePoint(step, m)) }
        }
        return StageCurves(stage: stage, loss: loss, margins: margins)
    }

    /// Reads a run directory: every `stages/*/metrics.jsonl` (in stage order), or the directory's own
    /// `metrics.jsonl` for a plain training run, and λ from `pipeline.jsonl`.
    ///
    /// - Throws: `PromptSetError` when a line is broken, or when `required` and the directory has none
    ///   of these files (an alignment run's directory without them gives a run with no curves, which
    ///   the plot marks "not logged by this run").
    public static func read(runDirectory: String, name: String? = nil, required: Bool = true) throws -> RunCurves {
        let dir = URL(fileURLWithPath: runDirectory)
        let fm = FileManager.default
        var stages: [StageCurves] = []
        let stagesDir = dir.appendingPathComponent("stages")
        let names = ((try? fm.contentsOfDirectory(atPath: stagesDir.path)) ?? []).sorted(by: stageOrder)
        for stage in names {
            let metrics = stagesDir.appendingPathComponent(stage).appendingPathComponent("metrics.jsonl")
            if fm.fileExists(atPath: metrics.path) { stages.append(try readStage(metrics, stage: stage)) }
        }
        let own = dir.appendingPathComponent("metrics.jsonl")
        if fm.fileExists(atPath: own.path) { stages.insert(try readStage(own, stage: "train"), at: 0) }
        var lambda: [CurvePoint] = [], lambdaStages: [String] = []
        let pipeline = dir.appendingPathComponent("pipeline.jsonl")
        if fm.fileExists(atPath: pipeline.path) {
            for o in try jsonLines(pipeline) {
                if let l = number(o["dual/lambda"]) {
                    lambda.append(CurvePoint(Double(lambda.count + 1), l))
                    lambdaStages.append(o["stage"] as? String ?? "")
                }
            }
        }
        guard !stages.isEmpty || !lambda.isEmpty || !required else {
            throw PromptSetError(file: runDirectory, "holds no stages/*/metrics.jsonl, metrics.jsonl or pipeline.jsonl; give a directory written by `dualign align` or `dualign train`")
        }
        return RunCurves(name: name ?? dir.lastPathComponent, stages: stages, lambda: lambda, lambdaStages: lambdaStages)
    }

    /// The SVG: one row per run, three panels (loss, reward margin, λ), one coloured line per stage
    /// with a legend of stage names under the row.
    public static func svg(_ runs: [RunCurves]) -> String {
        let panelW = 330.0, panelH = 200.0, rowH = 300.0, left = 70.0, gap = 80.0, top = 50.0
        let width = Int(left + 3 * panelW + 2 * gap + 30), height = Int(top + Double(max(runs.count, 1)) * rowH + 10)
        var c = SVGCanvas(width: width, height: height)
        c.text("Training curves", x: Double(width) / 2, y: 26, anchor: "middle", size: 16, weight: "bold")
        if runs.isEmpty { c.text("no training metrics found", x: Double(width) / 2, y: 80, anchor: "middle", size: 13) }
        for (r, run) in runs.enumerated() {
            let y0 = top + Double(r) * rowH
            c.text("run: \(run.name)", x: left - 50, y: y0 + 4, size: 14, weight: "bold")
            let stageSeries = run.stages.enumerated().map { (i, s) in (s.stage, SVGCanvas.palette[i % SVGCanvas.palette.count], s) }
            let panels: [(title: String, yTitle: String, xTitle: String, series: [(String, String, [CurvePoint])])] = [
                ("loss", "training loss", "step (within the stage)", stageSeries.map { ($0.0, $0.1, $0.2.loss) }),
                ("reward margin", "chosen − rejected score", "step (within the stage)", stageSeries.map { ($0.0, $0.1, $0.2.margins) }),
                ("λ (dual variable)", "λ", "dual update", run.lambda.isEmpty ? [] : [("λ", "#000000", run.lambda)]),
            ]
            for (k, panel) in panels.enumerated() {
                let pl = left + Double(k) * (panelW + gap), pt = y0 + 30, pr = pl + panelW, pb = pt + panelH
                c.text(panel.title, x: (pl + pr) / 2, y: pt - 8, anchor: "middle", size: 13, cssClass: "panel-title")
                let points = panel.series.flatMap(\.2)
                guard !points.isEmpty else {
                    c.rect(x: pl, y: pt, w: panelW, h: panelH, stroke: "#c0c0c0")
                    c.text("not logged by this run", x: (pl + pr) / 2, y: (pt + pb) / 2, anchor: "middle", size: 12)
                    continue
                }
                let xa = PlotAxis.covering(points.map(\.x)), ya = PlotAxis.covering(points.map(\.y))
                c.frame(x: xa, y: ya, left: pl, top: pt, right: pr, bottom: pb, tickSize: 10)
                c.text(panel.xTitle, x: (pl + pr) / 2, y: pb + 34, anchor: "middle", size: 11, cssClass: "axis-title")
                c.text(panel.yTitle, x: pl - 48, y: (pt + pb) / 2, anchor: "middle", size: 11, rotate: -90, cssClass: "axis-title")
                for (_, colour, pts) in panel.series where !pts.isEmpty {
                    let xy = pts.map { (pl + xa.fraction($0.x) * panelW, pb - ya.fraction($0.y) * panelH) }
                    if xy.count > 1 { c.polyline(xy, stroke: colour, cssClass: "curve") }
                    for p in xy where xy.count <= 40 { c.circle(cx: p.0, cy: p.1, r: 2.5, fill: colour) }
                }
            }
            // Legend: the stages' colours.
            var lx = left
            let ly = y0 + 30 + panelH + 58
            for (name, colour, _) in stageSeries {
                c.rect(x: lx, y: ly - 9, w: 14, h: 4, fill: colour)
                c.text(name, x: lx + 18, y: ly - 4, size: 11, cssClass: "legend")
                lx += 26 + Double(name.count) * 7
            }
        }
        return c.document
    }
}
