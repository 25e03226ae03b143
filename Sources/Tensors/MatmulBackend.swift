// Which library runs `Matmul`'s products, chosen at run time: the environment variable
// DUALIGN_MATMUL, else the run's config key, else the processor's features (oneDNN where AVX-512 is
// there, OpenBLAS otherwise). OpenBLAS is always there; oneDNN is linked (libdnnl-dev); BLIS is loaded
// at run time when its library is installed.

import CDNNL
import CShims
import COpenBLAS
import Foundation

/// A matrix-multiply library behind `Matmul`.
public enum MatmulBackend: String, CaseIterable, Sendable, CustomStringConvertible {
    /// OpenBLAS `cblas_sgemm`, with the kernels OpenBLAS picks (or `OPENBLAS_CORETYPE` pins).
    case openblas
    /// oneDNN `dnnl_sgemm`: AVX-512 kernels where the processor has them, whatever `OPENBLAS_CORETYPE` says.
    case onednn
    /// BLIS `bli_sgemm` (libblis.so.4, loaded at run time).
    case blis

    /// The environment variable that forces a backend.
    public static let environmentVariable = "DUALIGN_MATMUL"

    public var description: String { rawValue }

    /// Whether this backend can run in this process.
    public var isAvailable: Bool {
        switch self {
        case .openblas, .onednn: return true
        case .blis: return dualign_blis_load() == 1
        }
    }

    /// The backends that can run here, OpenBLAS first.
    public static var available: [MatmulBackend] { allCases.filter(\.isAvailable) }

    /// The library's own account of the kernels it runs (e.g. "Haswell", "avx512_core_bf16", "skx").
    public var kernels: String {
        switch self {
        case .openblas: return openblas_get_corename().map { String(cString: $0) } ?? "?"
        case .onednn: return OneDNN.isaName
        case .blis: return isAvailable ? String(cString: dualign_blis_arch()) : "not installed"
        }
    }

    /// The choice without a request: oneDNN when the processor has AVX-512 (F, BW, DQ, VL), where its
    /// kernels use the vector width OpenBLAS 0.3.21's (pinned) AVX2 kernels leave idle; else OpenBLAS.
    public static func automatic(features: CPUFeatures = .current) -> MatmulBackend {
        features.isSuperset(of: .avx512Core) ? .onednn : .openblas
    }

    /// The backend to use: `environment[DUALIGN_MATMUL]` if set, else `configured` (from `configKey`),
    /// else `automatic`. A name that is not a backend, or a backend that cannot run here, is an error
    /// naming where the name came from.
    public static func resolve(environment: [String: String] = ProcessInfo.processInfo.environment,
                               configured: String? = nil, configKey: String = "distributed.matmulBackend",
                               features: CPUFeatures = .current) throws -> MatmulSelection {
        let requests: [(String?, String)] = [(environment[environmentVariable], "environment variable \(environmentVariable)"),
                                             (configured, "config key \(configKey)")]
        for (value, source) in requests {
            guard let value, !value.isEmpty, value != "auto" else { continue }
            guard let backend = MatmulBackend(rawValue: value.lowercased()) else {
                throw MatmulBackendError(source: source, value: value,
                                         message: "unknown matrix backend; choose one of \(allCases.map(\.rawValue).joined(separator: ", ")) or auto")
            }
            guard backend.isAvailable else {
                throw MatmulBackendError(source: source, value: value,
                                         message: "BLIS is not installed here (install libblis4, or libblis-dev, or choose another backend)")
            }
            return MatmulSelection(backend: backend, reason: "forced by \(source)")
        }
        let backend = automatic(features: features)
        let reason = backend == .onednn ? "auto: AVX-512 (\(features))" : "auto: no AVX-512 (\(features.isEmpty ? "none" : features.description))"
        return MatmulSelection(backend: backend, reason: reason)
    }
}

/// A resolved backend and why it was chosen.
public struct MatmulSelection: Sendable, Equatable {
    public let backend: MatmulBackend
    /// "forced by environment variable DUALIGN_MATMUL", "auto: AVX-512 (...)", ...
    public let reason: String
}

/// A matrix backend named in the environment or a config that is unknown or cannot run here.
public struct MatmulBackendError: Error, CustomStringConvertible, Equatable {
    /// Where the name came from ("environment variable DUALIGN_MATMUL", "config key distributed.matmulBackend").
    public let source: String
    public let value: String
    public let message: String
    public var description: String { "\(source) = \"\(value)\": \(message)" }
}
