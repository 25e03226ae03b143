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
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        // Processor floating-point environment (flush-to-zero); no API beyond two inline functions.
        .target(name: "CShims"),

        .target(name: "Tensors", dependencies: ["COpenBLAS", "CShims"]),
        .target(name: "Models", dependencies: ["Tensors"]),
        .target(name: "Tokenizers"),
        .target(name: "Datasets", dependencies: ["Tokenizers", "CZlib"]),
        .target(name: "Alignment", dependencies: ["Tensors"]),
        .target(name: "Privacy", dependencies: ["Tensors"]),
        .target(name: "Distributed", dependencies: ["CMPI"]),
        .target(name: "Checkpoints", dependencies: ["CZstd"]),
        .target(name: "Training", dependencies: [
            "Tensors", "Models", "Tokenizers", "Datasets", "Alignment", "Distributed", "Checkpoints", "CZlib",
        ]),
        .executableTarget(name: "dualign", dependencies: [
            "Training", "Privacy", "CShims",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Yams", package: "Yams"),
        ]),

        // Shared assertions for the test targets (tensor comparison with named tolerances).
        .target(name: "TestSupport", dependencies: ["Tensors"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "TestSupport"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Training", "Alignment", "TestSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "AlignmentTests", dependencies: ["Alignment"]),
        .testTarget(name: "PrivacyTests", dependencies: ["Privacy", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training"], exclude: ["Fixtures"]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers"]),
        .testTarget(name: "FormatsTests", dependencies: ["Models", "Tokenizers"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed"]),
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints"]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "Tokenizers", "Models"]),
    ],
    swiftLanguageModes: [.v5]
)
