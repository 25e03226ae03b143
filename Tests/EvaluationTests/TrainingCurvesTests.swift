// Training curves read from the metrics logs of real tiny runs (Fixtures/runs, written by
// Tests/fixtures/make_training_curves.sh): every logged loss, margin and λ lands on its curve, the
// SVG draws a panel per quantity with a legend, and broken logs are named.

import Foundation
import XCTest
@testable import Evaluation

final class TrainingCurvesTests: XCTestCase {
    static let runs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/runs")

    /// The JSON objects of a metrics log, read independently of the code under test.
    func lines(_ url: URL) throws -> [[String: Any]] {
        try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    func testReadsEveryStageOfAnAlignmentRun() throws {
        for run in ["mocan", "primal-dual"] {
            let dir = Self.runs.appendingPathComponent(run)
            let curves = try TrainingCurves.read(runDirectory: dir.path)
            XCTAssertEqual(curves.name, run)
            let stageDirs = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("stages").path)
            XCTAssertEqual(Set(curves.stages.map(\.stage)), Set(stageDirs), "\(run): every stage with a metrics log")
            XCTAssertFalse(curves.stages.isEmpty)
            for stage in curves.stages {
                let logged = try lines(dir.appendingPathComponent("stages/\(stage.stage)/metrics.jsonl"))
                XCTAssertEqual(stage.loss.map(\.x), logged.compactMap { $0["loss"] != nil ? ($0["step"] as! Double) : nil }, "\(run)/\(stage.stage) steps")
                XCTAssertEqual(stage.loss.map(\.y), logged.compactMap { $0["loss"] as? Double }, "\(run)/\(stage.stage) losses")
                XCTAssertEqual(stage.margins.map(\.y), logged.compactMap { $0["rewards/margins"] as? Double }, "\(run)/\(stage.stage) margins")
                XCTAssertGreaterThan(stage.loss.count, 1, "\(run)/\(stage.stage) logs a loss per step")
            }
            // The first DPO stage starts at the reference: loss log 2.
            XCTAssertEqual(curves.stages[0].loss[0].y, log(2), accuracy: 1e-6, "\(run)/\(curves.stages[0].stage): first DPO loss")
            let lambdas = try lines(dir.appendingPathComponent("pipeline.jsonl")).compactMap { $0["dual/lambda"] as? Double }
            XCTAssertEqual(curves.lambda.map(\.y), lambdas, "\(run): λ of every dual update")
            XCTAssertEqual(curves.lambda.map(\.x), lambdas.indices.map { Double($0 + 1) })
        }
        let pd = try TrainingCurves.read(runDirectory: Self.runs.appendingPathComponent("primal-dual").path)
        XCTAssertEqual(pd.stages.map(\.stage), ["1.3-dpo", "2.3-dpo"], "stages in round order")
        XCTAssertEqual(pd.lambda.count, 2, "one λ per round")
    }

    func testReadsAPlainTrainingRun() throws {
        let curves = try TrainingCurves.read(runDirectory: Self.runs.appendingPathComponent("cost").path)
        XCTAssertEqual(curves.stages.map(\.stage), ["train"])
        let logged = try lines(Self.runs.appendingPathComponent("cost/metrics.jsonl"))
        XCTAssertEqual(curves.stages[0].loss.map(\.y), logged.map { $0["loss"] as! Double })
        // A cost model's margin: how much more the unsafer answer costs than the safer one.
        XCTAssertEqual(curves.stages[0].margins.map(\.y), logged.map { ($0["costs/unsafer"] as! Double) - ($0["costs/safer"] as! Double) })
        XCTAssertTrue(curves.lambda.isEmpty)
    }

    func testStageOrderIsNumeric() {
        let names = ["10.3-dpo", "2.3-dpo", "1.3-dpo", "5-dpo", "1-samples"]
        XCTAssertEqual(names.sorted(by: TrainingCurves.stageOrder), ["1-samples", "1.3-dpo", "2.3-dpo", "5-dpo", "10.3-dpo"])
    }

    func testBrokenLogsAndEmptyDirectoriesAreNamed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-curves-\(getpid())")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("stages/5-dpo"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertThrowsError(try TrainingCurves.read(runDirectory: dir.path)) { XCTAssertTrue("\($0)".contains("metrics.jsonl"), "\($0)") }
        XCTAssertEqual(try TrainingCurves.read(runDirectory: dir.path, required: false).stages, [], "an alignment run without logs: no curves")
        try "{\"step\": 1, \"loss\": 0.69}\n{\"step\": 2, \"loss\"\n".write(to: dir.appendingPathComponent("stages/5-dpo/metrics.jsonl"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrainingCurves.read(runDirectory: dir.path)) {
            XCTAssertTrue("\($0)".contains("metrics.jsonl") && "\($0)".contains("2"), "names the file and line: \($0)")
        }
    }

    func testSVGDrawsThreePanelsPerRunAndRenders() throws {
        let runs = try ["mocan", "primal-dual", "cost"].map { try TrainingCurves.read(runDirectory: Self.runs.appendingPathComponent($0).path) }
        let svg = TrainingCurves.svg(runs)
        XCTAssertEqual(svg.components(separatedBy: "class=\"panel-title\"").count - 1, 9, "loss, margin and λ for each of 3 runs")
        XCTAssertEqual(svg.components(separatedBy: "class=\"curve\"").count - 1, 2 * (1 + 2 + 1) + 1,
                       "loss and margin lines per stage (1 MoCAN, 2 primal–dual, the cost run), and primal–dual's λ (MoCAN's single λ is a point)")
        XCTAssertTrue(svg.contains(">run: primal-dual<") && svg.contains(">1.3-dpo<") && svg.contains(">2.3-dpo<"))
        XCTAssertEqual(svg.components(separatedBy: "not logged by this run").count - 1, 1, "the cost run has no λ")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-curves-png-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try SVGRenderer().write(svg, svg: dir.appendingPathComponent("curves.svg"), png: dir.appendingPathComponent("curves.png"))
        let image = try PNGTestDecoder.decode(dir.appendingPathComponent("curves.png"))
        XCTAssertEqual(image.height, 50 + 3 * 300 + 10)
        let ink = (0..<image.height).reduce(0) { sum, y in sum + (0..<image.width).filter { image.isInk($0, y) }.count }
        XCTAssertGreaterThan(ink, 5000, "the curves render is not blank")
    }
}
