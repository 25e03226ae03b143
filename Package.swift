// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Dualign",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "dualign", targets: ["dualign"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // C system libraries: module maps plus tiny headers of static inline accessors.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        // oneDNN (no pkg-config file in Debian's libdnnl-dev; header and library are on the default paths).
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        // Small C helpers: the floating-point environment (flush-to-zero), cpuid features, BLIS loading, bf16
        // rounding, and the secure noise's AVX2 / AVX-512 kernels (functions with `target` attributes).
        .target(name: "CShims"),

        // Modules, each above the ones it uses (one-way dependencies; see the shared design notes).
        .target(name: "Tensors", dependencies: ["COpenBLAS", "CDNNL", "CShims"]),
        .target(name: "Formats", dependencies: ["Tensors"]),
        .target(name: "Tokenizers"),
        .target(name: "Models", dependencies: ["Tensors", "Formats", "Tokenizers"]),
        .target(name: "Datasets", dependencies: ["Tensors", "Tokenizers", "CZlib"]),
        .target(name: "Alignment", dependencies: ["Tensors"]),
        .target(name: "Privacy", dependencies: ["Tensors", "CShims"]),
        .target(name: "Distributed", dependencies: ["CMPI"]),
        .target(name: "Checkpoints", dependencies: ["Formats", "CZstd"]),
        .target(name: "Training", dependencies: [
            "Tensors", "Formats", "Models", "Tokenizers", "Datasets", "Alignment", "Privacy", "Distributed", "Checkpoints",
        ]),
        .target(name: "Rollout", dependencies: ["Tensors", "Models", "Tokenizers", "Datasets", "Distributed"]),
        .target(name: "Pipelines", dependencies: [
            "Training", "Rollout", "Alignment", "Models", "Datasets", "Distributed", "Tensors", "Tokenizers",
        ]),
        .target(name: "Evaluation", dependencies: ["Rollout", "Models", "Datasets", "Distributed", "Tokenizers", "Tensors"]),
        .target(name: "Benchmarks", dependencies: [
            "Training", "Checkpoints", "Models", "Alignment", "Privacy", "Distributed", "Tensors", "Tokenizers", "Datasets",
            "COpenBLAS",
        ]),
        .executableTarget(name: "dualign", dependencies: [
            "Training", "Rollout", "Pipelines", "Evaluation", "Benchmarks", "Privacy", "CShims",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Yams", package: "Yams"),
        ]),

        // Shared assertions for the test targets (tensor comparison with named tolerances).
        .target(name: "TestSupport", dependencies: ["Tensors"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "TestSupport"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Formats", "Training", "Alignment", "TestSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "AlignmentTests", dependencies: ["Alignment", "Tensors"]),
        .testTarget(name: "PrivacyTests", dependencies: ["Privacy", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Models", "Formats", "Datasets", "Distributed", "Tensors", "Privacy",
                                                       "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "RolloutTests", dependencies: ["Rollout", "Models", "Tokenizers", "Datasets", "Distributed"]),
        .testTarget(name: "PipelinesTests", dependencies: ["Pipelines", "Training", "Rollout", "Alignment", "Datasets", "Distributed", "Tokenizers",
                                                         "Models", "Formats", "Tensors", "TestSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "Datasets"], exclude: ["Fixtures"]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers"]),
        .testTarget(name: "FormatsTests", dependencies: ["Formats", "Models", "Tokenizers", "TestSupport"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "Formats"], exclude: ["Fixtures"]),
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints", "Formats"]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "Tokenizers", "Models", "Formats", "Tensors"]),
    ],
    swiftLanguageModes: [.v5]
)
