// swift-tools-version:6.0
import PackageDescription

// No unsafe flags: SwiftPM refuses them in dependencies, and -Ounchecked removed every precondition. Release builds
// are whole-module optimised by default; measured against -Ounchecked -wmo the training step is unchanged
// (BENCHMARKS.md, "Build flags").
let package = Package(
    name: "SwiftPEFT",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "SwiftPEFT", targets: ["Engine", "Layers", "Checkpoints", "Models", "Methods", "Training", "Collectives"]),
        .executable(name: "peft", targets: ["peft"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // The HTTP server of `peft serve` (Hummingbird 2 on SwiftNIO), its logs and its Prometheus metrics.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.4.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.0.0"),
    ],
    targets: [
        // OpenBLAS, loaded at run time after the right core type is chosen (see BLASBinding/OpenBLAS.swift).
        .target(name: "BLASBinding"),
        // bfloat16 x bfloat16 -> float32 matrix product on AVX-512 BF16 (opt-in precision mode, see Engine/GEMM.swift).
        .target(name: "BF16Kernels"),
        // AVX-512 elementwise kernels (GELU), chosen at run time; Swift SIMD code is the portable fallback.
        .target(name: "VectorKernels"),
        // Open MPI opened at run time (dlopen), so the package builds and runs without it (see MPIShim.h).
        .target(name: "MPIShim", linkerSettings: [.linkedLibrary("dl", .when(platforms: [.linux]))]),
        // Ranks of a data-parallel job and their watched collectives (allreduce, broadcast) over MPIShim.
        .target(name: "Collectives", dependencies: ["MPIShim"]),
        // Float32 tensors, kernels and reverse-mode autograd.
        .target(name: "Engine", dependencies: ["BLASBinding", "BF16Kernels", "VectorKernels"]),
        // Module protocol with named parameters and the usual transformer layers.
        .target(name: "Layers", dependencies: ["Engine"]),
        // safetensors read/write and ONNX weight import.
        .target(name: "Checkpoints", dependencies: ["Engine"]),
        // DINOv2 / classic ViT / BERT encoders, WordPiece tokenizer, model registry.
        .target(name: "Models", dependencies: ["Layers", "Checkpoints"]),
        // PEFT methods: baselines (linear probe, full, BitFit, LayerNorm tuning, LoRA, adapter, VPT) and the five.
        .target(name: "Methods", dependencies: ["Models", "Checkpoints"]),
        // Datasets, the 1k protocol, input pipeline, optimisers and the trainer.
        .target(name: "Training", dependencies: ["Methods", "Collectives"]),
        // Many adapters on one base model: the adapter catalog, the resident set, switching and the inference worker.
        .target(name: "Serving", dependencies: ["Training", .product(name: "Metrics", package: "swift-metrics")]),
        // `peft serve`: the JSON API over HTTP (Hummingbird 2), logs and Prometheus metrics.
        .target(name: "ServingHTTP", dependencies: [
            "Serving",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .executableTarget(
            name: "peft",
            dependencies: ["Models", "Training", "Serving", "ServingHTTP",
                           .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Logging", package: "swift-log")]),
        // Helpers the test targets share (finite-difference gradient checks).
        .target(name: "TestSupport", dependencies: ["Engine", "Models"], path: "Tests/TestSupport"),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "BLASBinding", "TestSupport"]),
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints", "Engine"], exclude: ["Fixtures"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "TestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "MethodsTests", dependencies: ["Methods", "Checkpoints", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Collectives", "TestSupport"]),
        .testTarget(name: "ServingTests", dependencies: ["Serving", "Engine", "Training", "Methods", "Models", "TestSupport"]),
        // A model of its own through the public API only (no @testable): attach, train, save, load, merge.
        .testTarget(name: "PublicAPITests", dependencies: ["Engine", "Layers", "Checkpoints", "Models", "Methods", "Training"],
                    exclude: ["Fixtures"]),
        // Runs the built `peft` as a subprocess: hostile inputs, run folders, BLAS loading, numeric option table.
        .testTarget(name: "CLITests", dependencies: ["Checkpoints", "Engine", "Training"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)
