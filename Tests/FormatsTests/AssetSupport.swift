// Test support: the asset cache, installing assets through launch/assets.sh, GGUF ↔ Tokenizers glue.

import Foundation
import Tokenizers
import XCTest


/// Locations of the real model and llama.cpp vocab files, installed on demand.
enum TestAssets {
    /// `${DUALIGN_CACHE:-$HOME/.cache/dualign}`.
    static var cacheDirectory: URL {
        if let c = ProcessInfo.processInfo.environment["DUALIGN_CACHE"], !c.isEmpty {
            return URL(fileURLWithPath: c)
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/dualign")
    }

    /// The package root (three levels above this file).
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static var modelURL: URL { cacheDirectory.appendingPathComponent("SmolLM2-135M-Instruct.Q4_1.gguf") }

    static func vocabURL(_ name: String) -> URL {
        cacheDirectory.appendingPathComponent("vocab/ggml-vocab-\(name).gguf")
    }

    /// Makes sure `file` exists, running `launch/assets.sh <what>` if it does not.
    /// Skips when DUALIGN_SKIP_ASSETS=1; fails with the script's output if installation fails.
    static func require(_ file: URL, installing what: String) throws {
        if FileManager.default.fileExists(atPath: file.path) { return }
        if ProcessInfo.processInfo.environment["DUALIGN_SKIP_ASSETS"] == "1" {
            throw XCTSkip("\(file.path) is missing and DUALIGN_SKIP_ASSETS=1")
        }
        let script = packageRoot.appendingPathComponent("launch/assets.sh")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script.path, what]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, FileManager.default.fileExists(atPath: file.path) else {
            let text = String(decoding: output, as: UTF8.self)
            XCTFail("launch/assets.sh \(what) failed (status \(process.terminationStatus)) and \(file.path) is missing:\n\(text)")
            throw XCTSkip("asset \(file.lastPathComponent) unavailable")
        }
    }
}
