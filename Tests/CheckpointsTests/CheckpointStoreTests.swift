// The checkpoint protocol: layout, atomic writes, manifest, DONE, and keep-last-k retention.

import Checkpoints
import Foundation
import XCTest

/// The files a test checkpoint holds: one tensor archive and two ranks' state files.
let checkpointFiles = ["model.safetensors.zst", "rank-0.state.json", "rank-1.state.json"]

/// Writes checkpoint `step` the way ranks do (every file atomically), then finalizes it unless told not to.
@discardableResult
func saveCheckpoint(_ store: CheckpointStore, step: Int, finalize: Bool = true) throws -> CheckpointStore.Finalization? {
    let pending = try store.beginCheckpoint(step: step)
    let weights = TestData.gaussians(4096 + step, std: 0.02, seed: UInt64(step))
    try weights.withUnsafeBufferPointer {
        _ = try pending.writeArchive(name: "model.safetensors.zst", tensors: [("w", [weights.count], $0)],
                                     metadata: ["step": String(step)])
    }
    for rank in 0..<2 {
        try pending.writeFile(name: "rank-\(rank).state.json", bytes: Data("{\"rank\":\(rank),\"step\":\(step)}".utf8))
    }
    guard finalize else { return nil }
    return try store.finalize(step: step, files: checkpointFiles,
                              fields: ["step": .int(Int64(step)), "world_size": 2, "config_hash": "sha256:0f1e",
                                       "lambda_history": [0.5, 0.25], "sacpo": ["stage": "helpful"]])
}

/// The step directories present in the run directory.
func stepDirectories(_ store: CheckpointStore) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: store.runDirectory.path).filter { $0.hasPrefix("step-") }.sorted()
}

final class CheckpointStoreTests: XCTestCase {
    func testDirectoryNames() {
        XCTAssertEqual(CheckpointStore.directoryName(step: 1200), "step-00001200")
        XCTAssertEqual(CheckpointStore.directoryName(step: 0), "step-00000000")
        XCTAssertEqual(CheckpointStore.directoryName(step: 123_456_789), "step-123456789")
        XCTAssertEqual(CheckpointStore.step(fromDirectoryName: "step-00001200"), 1200)
        XCTAssertNil(CheckpointStore.step(fromDirectoryName: "step-1200"))
        XCTAssertNil(CheckpointStore.step(fromDirectoryName: "step-0000120x"))
        XCTAssertNil(CheckpointStore.step(fromDirectoryName: "tmp-00001200"))
    }

    func testWriteFinalizeAndVerify() throws {
        let store = try CheckpointStore(runDirectory: try makeScratchDirectory(self).appendingPathComponent("run"))
        let result = try XCTUnwrap(try saveCheckpoint(store, step: 1200))
        let dir = store.directory(step: 1200)
        XCTAssertEqual(dir.lastPathComponent, "step-00001200")
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path)),
                       Set(checkpointFiles + ["manifest.json", "DONE"]))
        XCTAssertEqual(Set(result.manifest.files.keys), Set(checkpointFiles))
        for name in checkpointFiles {
            let sum = try FileChecksum(contentsOf: dir.appendingPathComponent(name))
            XCTAssertEqual(result.manifest.files[name], CheckpointManifest.FileRecord(sum))
        }
        let verification = store.verify(step: 1200)
        XCTAssertTrue(verification.isValid, "\(verification.problems)")
        let checkpoint = try XCTUnwrap(verification.checkpoint)
        XCTAssertEqual(checkpoint.fields["step"]?.int64Value, 1200)
        XCTAssertEqual(checkpoint.fields["world_size"], 2)
        XCTAssertEqual(checkpoint.fields["config_hash"]?.stringValue, "sha256:0f1e")
        XCTAssertEqual(checkpoint.fields["lambda_history"], [0.5, 0.25])
        XCTAssertEqual(checkpoint.fields["sacpo"], ["stage": "helpful"])
        let archive = try TensorArchive.read(checkpoint.url(for: "model.safetensors.zst"))
        XCTAssertEqual(try archive.floats("w"), TestData.gaussians(4096 + 1200, std: 0.02, seed: 1200))

        // The manifest is plain JSON a person (or jq) can read.
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("manifest.json"))) as! [String: Any]
        XCTAssertEqual(json["format"] as? String, "dualign-checkpoint/1")
        XCTAssertEqual(json["step"] as? Int, 1200)
        let record = (json["files"] as! [String: Any])["rank-0.state.json"] as! [String: Any]
        XCTAssertEqual(record["bytes"] as? Int, "{\"rank\":0,\"step\":1200}".utf8.count)
        XCTAssertEqual((record["xxh64"] as? String)?.count, 16)
    }

    func testManifestIntegersStayExact() throws {
        let manifest = CheckpointManifest(step: 3, files: [:], fields: [
            "seed": .uint(UInt64.max), "min": .int(Int64.min), "hash": .int(0x7FFF_FFFF_FFFF_FFF1), "x": 1.5, "n": nil, "ok": true,
        ])
        XCTAssertEqual(try CheckpointManifest.decode(try manifest.encoded()), manifest)
    }

    func testKeepLastTwoRemovesTheOldestOnlyAfterTheThirdIsDone() throws {
        let store = try CheckpointStore(runDirectory: try makeScratchDirectory(self), keepLast: 2)
        try saveCheckpoint(store, step: 10)
        try saveCheckpoint(store, step: 20)
        XCTAssertEqual(try stepDirectories(store), ["step-00000010", "step-00000020"])

        try saveCheckpoint(store, step: 30, finalize: false)
        XCTAssertEqual(try stepDirectories(store), ["step-00000010", "step-00000020", "step-00000030"],
                       "nothing is removed while the new checkpoint has no DONE")
        XCTAssertEqual(try store.latestValidCheckpoint().checkpoint?.step, 20)

        let result = try store.finalize(step: 30, files: checkpointFiles)
        XCTAssertEqual(result.retention, RetentionReport(removedSteps: [10], failures: []))
        XCTAssertEqual(try stepDirectories(store), ["step-00000020", "step-00000030"])
        XCTAssertEqual(try store.latestValidCheckpoint().checkpoint?.step, 30)
        XCTAssertTrue(store.verify(step: 20).isValid)
    }

    func testInvalidFileNamesAndMisuseAreErrors() throws {
        let store = try CheckpointStore(runDirectory: try makeScratchDirectory(self))
        let pending = try store.beginCheckpoint(step: 5)
        for name in ["DONE", "manifest.json", "a/b", "", "..", "x.tmp-123"] {
            XCTAssertThrowsError(try pending.writeFile(name: name, bytes: Data([1]))) {
                XCTAssertTrue($0 is CheckpointStoreError, "\($0)")
            }
        }
        // A file that was never written: finalize refuses, and DONE is not created.
        XCTAssertThrowsError(try store.finalize(step: 5, files: ["never-written.bin"])) {
            XCTAssertTrue("\($0)".contains("does not exist"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: store.directory(step: 5).appendingPathComponent("DONE").path))
        XCTAssertThrowsError(try store.finalize(step: 6, files: [])) { XCTAssertTrue("\($0)".contains("beginCheckpoint"), "\($0)") }
        XCTAssertThrowsError(try store.beginCheckpoint(step: -1))
        XCTAssertThrowsError(try CheckpointStore(runDirectory: store.runDirectory, keepLast: 0))
    }

    func testACompleteStepCannotBeReopenedUntilDiscarded() throws {
        let store = try CheckpointStore(runDirectory: try makeScratchDirectory(self), keepLast: 3)
        try saveCheckpoint(store, step: 20)
        try saveCheckpoint(store, step: 40)
        XCTAssertThrowsError(try store.beginCheckpoint(step: 40)) {
            XCTAssertTrue("\($0)".contains("discardCheckpoints"), "\($0)")
        }
        XCTAssertThrowsError(try store.finalize(step: 40, files: checkpointFiles)) {
            XCTAssertTrue("\($0)".contains("already complete"), "\($0)")
        }
        // Resumed from 20: the newer timeline is discarded, then step 40 can be written again.
        XCTAssertEqual(try store.discardCheckpoints(after: 20).removedSteps, [40])
        XCTAssertEqual(try stepDirectories(store), ["step-00000020"])
        try saveCheckpoint(store, step: 40)
        XCTAssertEqual(try store.latestValidCheckpoint().checkpoint?.step, 40)
    }

    func testNoRunDirectoryMeansNoCheckpoint() throws {
        let store = try CheckpointStore(runDirectory: try makeScratchDirectory(self).appendingPathComponent("not-yet"))
        let selection = try store.latestValidCheckpoint()
        XCTAssertNil(selection.checkpoint)
        XCTAssertEqual(selection.problems, [])
        XCTAssertEqual(store.verify(step: 1).problems.map(\.kind), [.directoryMissing])
    }

    func testWritesAreAtomicAndLeaveNoTemporaryFiles() throws {
        let store = try CheckpointStore(runDirectory: try makeScratchDirectory(self))
        let pending = try store.beginCheckpoint(step: 1)
        try pending.writeFile(name: "a.bin", bytes: Data([1, 2, 3]))
        try pending.writeFile(name: "a.bin", bytes: Data([4, 5]))  // replaces, never appends
        XCTAssertEqual(try Data(contentsOf: pending.directory.appendingPathComponent("a.bin")), Data([4, 5]))
        struct Boom: Error {}
        XCTAssertThrowsError(try pending.writeFile(name: "b.bin") { sink in try sink.write(Data([9])); throw Boom() })
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: pending.directory.path), ["a.bin"],
                       "a failed write removes its temporary file and never creates the target")
        XCTAssertThrowsError(try DurableFile.write(Data([1]), to: pending.directory.appendingPathComponent("no/such/dir"))) {
            XCTAssertTrue($0 is CheckpointIOError, "\($0)")
        }
    }
}
