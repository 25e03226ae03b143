// Rendering an SVG file to PNG with librsvg's `rsvg-convert` (Debian package librsvg2-bin), so the
// PNG shows exactly what the SVG shows: text, axis titles, legends.

import Foundation

/// A failure to render: the renderer is missing, or it failed on a file.
public struct SVGRenderError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public var description: String { message }
}

/// Renders SVG to PNG by running `rsvg-convert`.
public struct SVGRenderer: Sendable {
    /// The renderer's path.
    public let executable: String

    /// The Debian package that provides the renderer.
    public static let package = "librsvg2-bin"

    /// Finds `rsvg-convert` on `PATH`.
    ///
    /// - Throws: `SVGRenderError` naming the package to install when it is not there (never a silent skip).
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let dirs = (environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":").map(String.init)
        guard let found = dirs.map({ URL(fileURLWithPath: $0).appendingPathComponent("rsvg-convert").path })
            .first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw SVGRenderError(message: "rsvg-convert is not on PATH; the plots' PNG files are rendered from their SVG with it. Install Debian's \(Self.package) (`apt-get install \(Self.package)`, or run launch/setup.sh, which installs it)")
        }
        executable = found
    }

    /// Renders `svg` (a file) to `png` at its own size (1 SVG pixel = 1 PNG pixel).
    ///
    /// - Throws: `SVGRenderError` with the renderer's message when it fails.
    public func render(svg: URL, png: URL) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["--format", "png", "--background-color", "white", "--output", png.path, svg.path]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw SVGRenderError(message: "\(executable) failed on \(svg.path) (status \(process.terminationStatus)): \(message.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    /// Writes `document` to `svg` and renders it to `png`.
    public func write(_ document: String, svg: URL, png: URL) throws {
        try document.write(to: svg, atomically: true, encoding: .utf8)
        try render(svg: svg, png: png)
    }
}
