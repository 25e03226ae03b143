// Test support: the public data root, found as the library and the launch scripts find it.

import Foundation
import XCTest

/// The data root: `DUALIGN_DATA` (which `launch/test.sh` exports), else the folder `launch/assets.sh data`
/// resolves and verifies (../shared/data beside the repository, or a verified download).
enum TestDataRoot {
    /// The package root (three levels above this file).
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The folder, or why there is none.
    static let resolved: Result<URL, TestDataRootError> = {
        if let d = ProcessInfo.processInfo.environment["DUALIGN_DATA"], !d.isEmpty { return .success(URL(fileURLWithPath: d)) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [packageRoot.appendingPathComponent("launch/assets.sh").path, "data"]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        do { try process.run() } catch { return .failure(TestDataRootError(message: "cannot run launch/assets.sh data: \(error)")) }
        let path = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let log = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0, !path.isEmpty else {
            return .failure(TestDataRootError(message: "launch/assets.sh data failed (status \(process.terminationStatus)):\n\(log)"))
        }
        return .success(URL(fileURLWithPath: path))
    }()

    /// `relative` under the data root; fails the test with the reason when it cannot be found (skips only
    /// when DUALIGN_SKIP_ASSETS=1).
    static func require(_ relative: String, file: StaticString = #filePath, line: UInt = #line) throws -> URL {
        let reason: String
        switch resolved {
        case .success(let root):
            let url = root.appendingPathComponent(relative)
            if FileManager.default.fileExists(atPath: url.path) { return url }
            reason = "\(url.path) is missing from the data root; run `launch/assets.sh data` to verify it"
        case .failure(let error):
            reason = "no data root (DUALIGN_DATA): \(error.message)"
        }
        if ProcessInfo.processInfo.environment["DUALIGN_SKIP_ASSETS"] == "1" { throw XCTSkip(reason) }
        XCTFail(reason, file: file, line: line)
        throw XCTSkip(reason)
    }
}

struct TestDataRootError: Error {
    let message: String
}
