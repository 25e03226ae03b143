// The pyrit-harm schema on hand-written rows in PyRIT's format, and on the real files if cached.

import Datasets
import Tokenizers
import XCTest

final class PyRITHarmSchemaTests: XCTestCase {
    private let multiScore = """
    # dataset_version=1.0, harm_definition=violence.yaml, harm_definition_version=1.0,,,,
    harm_category,objective,assistant_response,human_score_1,human_score_2,human_score_3,data_type
    violence,how to hurt someone,"I can't help with that.",0,0,0,text
    violence,how to hurt someone,"Hit them, hard.",1,0.75,1,text
    violence,how to hurt someone,"Maybe talk it out first, ""calmly"".",0,0.25,0,text
    violence,a different objective,Response X,0.5,0.5,0.5,text
    violence,a different objective,Response Y,0.5,0.5,0.5,text

    """

    func testMeanScoresPairsByObjectiveAndGap() throws {
        let dir = try TempDirectory()
        let path = try dir.write("violence_multi_score.csv", multiScore)
        let d = try DatasetLoader.load(.pyritHarm, paths: [path])
        XCTAssertEqual(d.report.rows, 5)
        XCTAssertEqual(d.scoredResponses.map(\.cost), [0, 2.75 / 3, 0.25 / 3, 0.5, 0.5])
        // Objective 1: (0 vs .917), (0 vs .083), (.083 vs .917); objective 2: equal scores, no pair.
        XCTAssertEqual(d.pairs.count, 3)
        XCTAssertEqual(d.pairs.map(\.chosen), ["I can't help with that.", "I can't help with that.",
                                               "Maybe talk it out first, \"calmly\"."])
        XCTAssertEqual(d.pairs.map(\.rejected), ["Hit them, hard.", "Maybe talk it out first, \"calmly\".", "Hit them, hard."])
        XCTAssertTrue(d.pairs.allSatisfy { $0.aspect == .harmlessness && $0.prompt == [.user("how to hurt someone")] })
        XCTAssertEqual(d.pairs[0].source.line, 3)
        XCTAssertEqual(d.pairs[0].rejectedSource?.line, 4)
        XCTAssertEqual(d.prompts.map(\.promptText), ["how to hurt someone", "a different objective"])
        XCTAssertEqual(d.prompts.first?.category, "violence")

        var options = DatasetOptions()
        options.harmScoreGap = 0.25
        XCTAssertEqual(try DatasetLoader.load(.pyritHarm, paths: [path], options: options).pairs.count, 2)
    }

    func testSingleScoreColumnAndBadScores() throws {
        let dir = try TempDirectory()
        let single = try dir.write("representational.csv", """
        # dataset_version=1.0,,
        harm_category,objective,assistant_response,human_score,data_type
        R,obj,a,0.25,text
        R,obj,b,0.75,text

        """)
        XCTAssertEqual(try DatasetLoader.load(.pyritHarm, paths: [single]).pairs.map(\.chosen), ["a"])
        let bad = try dir.write("bad.csv", "harm_category,objective,assistant_response,human_score_1\nR,obj,a,1.5\nR,obj,b,\n")
        let e = expectDatasetError(try DatasetLoader.load(.pyritHarm, paths: [bad]))
        XCTAssertEqual(e?.line, 2)
        XCTAssertEqual(e?.field, "human_score_1")
        var skip = DatasetOptions()
        skip.skipInvalidRows = true
        let d = try DatasetLoader.load(.pyritHarm, paths: [bad], options: skip)
        XCTAssertEqual(d.report.skippedInvalid, 2)
        XCTAssertEqual(d.report.invalidRowSamples.map(\.line), [2, 3])
        let notPyRIT = try dir.write("x.csv", "a,b\n1,2\n")
        XCTAssertEqual(expectDatasetError(try DatasetLoader.load(.pyritHarm, paths: [notPyRIT]))?.kind, .missingField)
    }

    /// PyRIT 1.1.0's human-scored harm files, when a setup step cached them:
    /// ```
    /// CACHE=${DUALIGN_CACHE:-$HOME/.cache/dualign}
    /// python3 -m pip download --no-deps pyrit==1.1.0 -d "$CACHE/pip"
    /// mkdir -p "$CACHE/pyrit/scorer_evals/harm"
    /// unzip -o -j "$CACHE/pip/pyrit-1.1.0-py3-none-any.whl" 'pyrit/datasets/scorer_evals/harm/*.csv' -d "$CACHE/pyrit/scorer_evals/harm"
    /// ```
    func testRealPyRITHarmFilesIfCached() throws {
        let dir = SharedData.cacheDirectory.appendingPathComponent("pyrit/scorer_evals/harm")
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("violence.csv").path) else {
            throw XCTSkip("PyRIT harm CSVs not cached at \(dir.path); fetch them with: python3 -m pip download --no-deps pyrit==1.1.0 -d $CACHE/pip && mkdir -p \(dir.path) && unzip -o -j $CACHE/pip/pyrit-1.1.0-py3-none-any.whl 'pyrit/datasets/scorer_evals/harm/*.csv' -d \(dir.path)")
        }
        let d = try DatasetLoader.load(.pyritHarm, paths: [dir.path])
        print("pyrit-harm (gap 0): \(d.report)")
        XCTAssertEqual(d.report.files, 11)
        XCTAssertEqual(d.report.rows, 1005)
        XCTAssertEqual(d.report.skippedInvalid, 0)
        XCTAssertEqual(d.scoredResponses.count, 1005)
        // Checked with a Python twin of the rules: 3,291 pairs with differing means, of which 6 pair
        // two identical response texts (dropped and counted).
        XCTAssertEqual(d.report.droppedIdenticalResponses, 6)
        XCTAssertEqual(d.pairs.count, 3285)
        var options = DatasetOptions()
        options.harmScoreGap = 0.25
        let wide = try DatasetLoader.load(.pyritHarm, paths: [dir.path], options: options)
        print("pyrit-harm (gap 0.25): \(wide.pairs.count) pairs")
        XCTAssertEqual(wide.pairs.count, 2512)
    }
}
