// The data root: DUALIGN_DATA in the library and in configs, and `launch/assets.sh data`'s checks.

@testable import Datasets
import Foundation
import XCTest

final class DataRootTests: XCTestCase {
    func testExpansionAndErrors() throws {
        let root = try TempDirectory()
        let env = ["DUALIGN_DATA": root.url.path]
        XCTAssertEqual(try DataRoot.expand("$DUALIGN_DATA/coconot/x.jsonl", environment: env), root.url.path + "/coconot/x.jsonl")
        XCTAssertEqual(try DataRoot.expand("${DUALIGN_DATA}/x", environment: env), root.url.path + "/x")
        XCTAssertEqual(try DataRoot.expand("relative/x", environment: [:]), "relative/x", "other paths are left alone")
        for env in [[:], ["DUALIGN_DATA": ""], ["DUALIGN_DATA": root.url.path + "/nope"]] {
            do {
                _ = try DataRoot.expand("$DUALIGN_DATA/x", environment: env)
                XCTFail("expected a DataRootError for \(env)")
            } catch let e as DataRootError {
                XCTAssertTrue(e.description.contains("DUALIGN_DATA"), "\(e)")
                XCTAssertTrue(e.description.contains("launch/assets.sh data"), "\(e)")
            }
        }
        XCTAssertThrowsError(try DataRoot.path("missing.csv", environment: env)) { error in
            XCTAssertTrue("\(error)".contains("missing.csv"), "\(error)")
        }
    }

    func testConfigPathsNameTheDataRoot() throws {
        // A dataset entry as a run config writes it; the spec resolves it through DUALIGN_DATA.
        let root = try SharedData.directory()
        let json = #"{"schema": "coconot", "paths": ["$DUALIGN_DATA/coconot/coconot_pref.jsonl"], "excludeEvaluationPrompts": false}"#
        let spec = try JSONDecoder().decode(DatasetSpec.self, from: Data(json.utf8))
        XCTAssertEqual(spec.options.excludeEvaluationPrompts, false)
        XCTAssertEqual(try spec.resolvedPaths(relativeTo: URL(fileURLWithPath: "/somewhere/else")),
                       [root.appendingPathComponent("coconot/coconot_pref.jsonl").path], "a $DUALIGN_DATA path is not made relative to the config")
        XCTAssertEqual(try spec.load().pairs.count, 927)
        let xs = #"{"schema": "xstest", "paths": ["${DUALIGN_DATA}/xstest/model_completions"], "xstestPrompts": "$DUALIGN_DATA/xstest/xstest_prompts.csv"}"#
        let resolved = try JSONDecoder().decode(DatasetSpec.self, from: Data(xs.utf8)).resolved()
        XCTAssertEqual(resolved.options.xstestPrompts, root.appendingPathComponent("xstest/xstest_prompts.csv").path)
    }

    // MARK: - launch/assets.sh data

    /// The shared data is read-only; a copy must be writable to be corrupted and removed.
    private func makeWritable(_ root: URL) throws {
        let fm = FileManager.default
        try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: root.path)
        for case let relative as String in fm.enumerator(atPath: root.path)! {
            let path = root.appendingPathComponent(relative).path
            var isDirectory: ObjCBool = false
            _ = fm.fileExists(atPath: path, isDirectory: &isDirectory)
            try fm.setAttributes([.posixPermissions: isDirectory.boolValue ? 0o755 : 0o644], ofItemAtPath: path)
        }
    }

    /// Runs `launch/assets.sh data` from `repo` with `environment` added; returns status, stdout, stderr.
    private func runAssets(repo: URL, _ environment: [String: String]) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [repo.appendingPathComponent("launch/assets.sh").path, "data"]
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "DUALIGN_DATA")
        env.merge(environment) { $1 }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let o = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, o.trimmingCharacters(in: .whitespacesAndNewlines), e)
    }

    func testAssetsScriptVerifiesACopyAndRejectsCorruption() throws {
        let source = try SharedData.directory()
        let tmp = try TempDirectory()
        let copy = tmp.url.appendingPathComponent("data")
        try FileManager.default.copyItem(at: source, to: copy)
        try makeWritable(copy)
        let env = ["DUALIGN_DATA": copy.path, "DUALIGN_CACHE": tmp.url.appendingPathComponent("cache").path]
        let (ok, printed, _) = try runAssets(repo: SharedData.packageRoot, env)
        XCTAssertEqual(ok, 0)
        XCTAssertEqual(URL(fileURLWithPath: printed).resolvingSymlinksInPath().path, copy.resolvingSymlinksInPath().path)
        let stamps = try FileManager.default.contentsOfDirectory(atPath: tmp.url.appendingPathComponent("cache/data-stamps").path)
        XCTAssertEqual(stamps.count, 1, "a verified folder gets a stamp")

        // One flipped byte (same size) in a pinned file.
        let victim = copy.appendingPathComponent("coconot/coconot_pref.jsonl")
        var bytes = try Data(contentsOf: victim)
        bytes[100] ^= 1
        try bytes.write(to: victim)
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(5)], ofItemAtPath: victim.path)
        let (bad, _, message) = try runAssets(repo: SharedData.packageRoot, env)
        XCTAssertNotEqual(bad, 0, "a corrupted file must fail verification")
        XCTAssertTrue(message.contains("coconot/coconot_pref.jsonl") && message.contains("DUALIGN_DATA"), message)

        // A missing file.
        try FileManager.default.removeItem(at: victim)
        let (missing, _, message2) = try runAssets(repo: SharedData.packageRoot, env)
        XCTAssertNotEqual(missing, 0)
        XCTAssertTrue(message2.contains("coconot/coconot_pref.jsonl"), message2)
    }

    func testAssetsScriptDownloadFailureNamesWhatToProvide() throws {
        // A repository copy with no ../shared/data beside it, and GitHub unreachable (a closed proxy port).
        let tmp = try TempDirectory()
        let repo = tmp.url.appendingPathComponent("repo")
        try FileManager.default.createDirectory(at: repo, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: SharedData.packageRoot.appendingPathComponent("launch"), to: repo.appendingPathComponent("launch"))
        let env = ["DUALIGN_CACHE": tmp.url.appendingPathComponent("cache").path,
                   "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"]
        let (status, printed, message) = try runAssets(repo: repo, env)
        XCTAssertNotEqual(status, 0)
        XCTAssertEqual(printed, "", "nothing is printed as a data root on failure")
        XCTAssertTrue(message.contains("cannot download https://raw.githubusercontent.com/"), message)
        XCTAssertTrue(message.contains("DUALIGN_DATA") && message.contains("launch/data.sha256"), message)
    }
}
