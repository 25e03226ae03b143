// Where the public data lives: the data root (`DUALIGN_DATA`) and the asset cache (`DUALIGN_CACHE`).

import Foundation

/// The data root or the asset cache cannot be used; says which variable to set and what to run.
public struct DataRootError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The variable or path at fault.
    public let subject: String
    public let message: String

    public init(subject: String, _ message: String) {
        self.subject = subject
        self.message = message
    }

    /// `DUALIGN_DATA is not set; …`: the subject, then what is wrong with it and what to do.
    public var description: String { "\(subject) \(message)" }
}

/// The folder that holds the public preference and safety data (HH-RLHF, XSTest, refusal-direction,
/// safety-tuned-llamas, CoCoNot, JailbreakBench artifacts, AlpacaEval, red-instruct), one sub-folder per
/// source, as `launch/assets.sh data` resolves and verifies it.
///
/// The launch scripts export `DUALIGN_DATA=$(launch/assets.sh data)`; the library only reads the
/// variable, so every rank and every test sees the folder the script checked. Config paths may name
/// it as `$DUALIGN_DATA/coconot/coconot_pref.jsonl` (or `${DUALIGN_DATA}/…`); see `expand(_:)`.
public enum DataRoot {
    /// The environment variable naming the data root.
    public static let variable = "DUALIGN_DATA"

    /// The data root from `DUALIGN_DATA`.
    ///
    /// - Throws: `DataRootError` when the variable is unset or empty, or the folder does not exist.
    public static func directory(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> URL {
        guard let value = environment[variable], !value.isEmpty else {
            throw DataRootError(subject: variable,
                                "is not set; run `export DUALIGN_DATA=$(launch/assets.sh data)` (it finds ../shared/data, or downloads and verifies the public data), or set DUALIGN_DATA to a folder holding the files listed in launch/data.sha256")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: value, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataRootError(subject: variable,
                                "is '\(value)', which is not a folder; run `launch/assets.sh data` to find or download the data and set DUALIGN_DATA to the folder it prints")
        }
        return URL(fileURLWithPath: value)
    }

    /// The path of `relative` (e.g. `xstest/xstest_prompts.csv`) under the data root.
    ///
    /// - Throws: `DataRootError` when the root is unusable or the file is missing from it.
    public static func path(_ relative: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        let path = try directory(environment: environment).appendingPathComponent(relative).path
        guard FileManager.default.fileExists(atPath: path) else {
            throw DataRootError(subject: path,
                                "is missing from the data root (DUALIGN_DATA); run `launch/assets.sh data` to verify the folder, or point DUALIGN_DATA at a complete copy")
        }
        return path
    }

    /// Whether `path` names the data root by variable (`$DUALIGN_DATA…` or `${DUALIGN_DATA}…`).
    public static func refersToRoot(_ path: String) -> Bool {
        path.contains("$" + variable) || path.contains("${" + variable + "}")
    }

    /// `path` with `$DUALIGN_DATA` and `${DUALIGN_DATA}` replaced by the data root; other paths unchanged.
    ///
    /// - Throws: `DataRootError` when the path names the root and `DUALIGN_DATA` is unusable.
    public static func expand(_ path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        guard refersToRoot(path) else { return path }
        let root = try directory(environment: environment).path
        return path.replacingOccurrences(of: "${" + variable + "}", with: root)
            .replacingOccurrences(of: "$" + variable, with: root)
    }

    /// The asset cache: `${DUALIGN_CACHE:-$HOME/.cache/dualign}` (model, prompt sets, downloads).
    public static func cacheDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let c = environment["DUALIGN_CACHE"], !c.isEmpty { return URL(fileURLWithPath: c) }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/dualign")
    }
}
