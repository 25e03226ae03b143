// Loading after trouble: corrupt, truncated and missing files, missing manifests, and crashes mid-write.

import Checkpoints
import Foundation
import XCTest

final class CheckpointRecoveryTests: XCTestCase {
    /// A run with complete checkpoints at steps 20 and 40 (keep-last 3).
    private func runWithTwoCheckpoints() throws -> CheckpointStore {
        let store = try CheckpointStore(runDirectory: try makeScratchDirectory(self), keepLast: 3)
        try saveCheckpoint(store, step: 20)
        try saveCheckpoint(store, step: 40)
        return store
    }

    private func file(_ store: CheckpointStore, _ step: Int, _ name: String) -> URL {
        store.directory(step: step).appendingPathComponent(name)
    }

    func testFlippedByteFallsBackAndNamesTheFile() throws {
        let store = try runWithTwoCheckpoints()
        try flipByte(in: file(store, 40, "model.safetensors.zst"), at: 100)
        let selection = try store.latestValidCheckpoint()
        XCTAssertEqual(selection.checkpoint?.step, 20)
        XCTAssertEqual(selection.problems.count, 1)
        let problem = try XCTUnwrap(selection.problems.first)
        XCTAssertEqual(problem.step, 40)
        XCTAssertEqual(problem.file, "model.safetensors.zst")
        guard case .checksumMismatch(let expected, let got) = problem.kind else { return XCTFail("\(problem.kind)") }
        XCTAssertNotEqual(expected, got)
        XCTAssertEqual(problem.outcome, .fallingBackTo(step: 20))
        XCTAssertEqual(selection.logLines, [
            "checkpoint step-00000040: model.safetensors.zst checksum mismatch (expected \(expected), got \(got)); falling back to step-00000020",
        ])
        XCTAssertEqual(store.verify(step: 40).problems.map(\.file), ["model.safetensors.zst"])
        XCTAssertTrue(store.verify(step: 20).isValid)
    }

    func testTruncatedFileFallsBack() throws {
        let store = try runWithTwoCheckpoints()
        let url = file(store, 40, "model.safetensors.zst")
        let size = try Data(contentsOf: url).count
        try truncateFile(url, to: size / 2)
        let selection = try store.latestValidCheckpoint()
        XCTAssertEqual(selection.checkpoint?.step, 20)
        XCTAssertEqual(selection.problems.map(\.kind), [.truncated(expectedBytes: size, actualBytes: size / 2)])
        XCTAssertEqual(selection.problems.first?.file, "model.safetensors.zst")
        XCTAssertTrue(selection.logLines[0].contains("model.safetensors.zst truncated"), selection.logLines[0])
        // The archive reader reports the same damage by itself.
        XCTAssertThrowsError(try TensorArchive.read(url)) { XCTAssertTrue("\($0)".contains("truncated"), "\($0)") }
    }

    func testEveryBadFileIsReported() throws {
        let store = try runWithTwoCheckpoints()
        try flipByte(in: file(store, 40, "rank-0.state.json"), at: 3)
        try FileManager.default.removeItem(at: file(store, 40, "rank-1.state.json"))
        try Data([0]).write(to: file(store, 40, "model.safetensors.zst"), options: .atomic)  // replaced by a stranger
        let problems = store.verify(step: 40).problems
        XCTAssertEqual(problems.map(\.file), ["model.safetensors.zst", "rank-0.state.json", "rank-1.state.json"])
        XCTAssertEqual(problems[2].kind, .fileMissing)
        XCTAssertEqual(try store.latestValidCheckpoint().checkpoint?.step, 20)
    }

    func testDirectoryWithoutDoneIsIgnored() throws {
        let store = try runWithTwoCheckpoints()
        try FileManager.default.removeItem(at: file(store, 40, "DONE"))
        let selection = try store.latestValidCheckpoint()
        XCTAssertEqual(selection.checkpoint?.step, 20)
        XCTAssertEqual(selection.problems.map(\.kind), [.incomplete])
        XCTAssertTrue(selection.logLines[0].hasPrefix("checkpoint step-00000040: incomplete"), selection.logLines[0])
    }

    func testMissingManifestIsIgnoredWithAProblem() throws {
        let store = try runWithTwoCheckpoints()
        try FileManager.default.removeItem(at: file(store, 40, "manifest.json"))
        let selection = try store.latestValidCheckpoint()
        XCTAssertEqual(selection.checkpoint?.step, 20)
        XCTAssertEqual(selection.problems.map(\.kind), [.manifestMissing])
        XCTAssertEqual(selection.logLines, [
            "checkpoint step-00000040: manifest.json is missing although DONE exists; falling back to step-00000020",
        ])
    }

    func testEditedOrGarbledManifestIsDetected() throws {
        let store = try runWithTwoCheckpoints()
        let url = file(store, 40, "manifest.json")
        let text = try String(contentsOf: url, encoding: .utf8)
        try text.replacingOccurrences(of: "\"step\" : 40", with: "\"step\" : 41").write(to: url, atomically: true, encoding: .utf8)
        guard case .manifestChecksumMismatch = store.verify(step: 40).problems.first?.kind else {
            return XCTFail("\(store.verify(step: 40).problems)")
        }
        XCTAssertEqual(try store.latestValidCheckpoint().checkpoint?.step, 20)
        try Data("{not json".utf8).write(to: url)
        XCTAssertEqual(try store.latestValidCheckpoint().checkpoint?.step, 20)
    }

    func testStaleTemporaryFileIsIgnored() throws {
        let store = try runWithTwoCheckpoints()
        try Data("half a write".utf8).write(to: file(store, 40, "model.safetensors.zst.tmp-99999"))
        let selection = try store.latestValidCheckpoint()
        XCTAssertEqual(selection.checkpoint?.step, 40)
        XCTAssertEqual(selection.problems, [])
    }

    func testNothingValidMeansStartFromScratch() throws {
        let store = try runWithTwoCheckpoints()
        try flipByte(in: file(store, 20, "rank-1.state.json"), at: 0)
        try truncateFile(file(store, 40, "rank-0.state.json"), to: 0)
        let selection = try store.latestValidCheckpoint()
        XCTAssertNil(selection.checkpoint)
        XCTAssertEqual(selection.problems.map(\.step), [40, 20])
        XCTAssertTrue(selection.problems.allSatisfy { $0.outcome == .noValidCheckpoint })
        XCTAssertTrue(selection.logLines[1].hasSuffix("no earlier complete checkpoint is valid"), selection.logLines[1])
    }

    /// A crash after the files were written but before DONE: resume uses the previous checkpoint, and the
    /// next finalize removes the dead directory.
    func testCrashMidWriteResumesFromThePreviousAndNextFinalizeCleansUp() throws {
        let store = try CheckpointStore(runDirectory: try makeScratchDirectory(self), keepLast: 2)
        try saveCheckpoint(store, step: 20)
        try saveCheckpoint(store, step: 40, finalize: false)  // every rank wrote; rank 0 died before finalize
        try Data("interrupted".utf8).write(to: store.directory(step: 40).appendingPathComponent("rank-1.state.json.tmp-4242"))

        let selection = try store.latestValidCheckpoint()
        XCTAssertEqual(selection.checkpoint?.step, 20)
        XCTAssertEqual(selection.problems.map(\.kind), [.incomplete])
        XCTAssertEqual(selection.problems.first?.outcome, .fallingBackTo(step: 20))

        // Resume from 20; the next checkpoint is at 60. Its finalize removes the incomplete step-40.
        let result = try XCTUnwrap(try saveCheckpoint(store, step: 60))
        XCTAssertEqual(result.retention.removedSteps, [40])
        XCTAssertEqual(try stepDirectories(store), ["step-00000020", "step-00000060"])
        XCTAssertEqual(try store.latestValidCheckpoint().checkpoint?.step, 60)
    }

    /// The same crash, but the resumed run saves step 40 again: the directory is reused, its stale temporary
    /// file removed, and the checkpoint becomes complete.
    func testCrashMidWriteThenRewritingTheSameStep() throws {
        let store = try CheckpointStore(runDirectory: try makeScratchDirectory(self), keepLast: 2)
        try saveCheckpoint(store, step: 20)
        try saveCheckpoint(store, step: 40, finalize: false)
        let stale = store.directory(step: 40).appendingPathComponent("model.safetensors.zst.tmp-4242")
        try Data("interrupted".utf8).write(to: stale)
        XCTAssertEqual(try store.latestValidCheckpoint().checkpoint?.step, 20)

        try saveCheckpoint(store, step: 40)
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale.path))
        XCTAssertEqual(try store.latestValidCheckpoint().checkpoint?.step, 40)
        XCTAssertEqual(try stepDirectories(store), ["step-00000020", "step-00000040"])
    }
}
