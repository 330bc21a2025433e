// swift-tools-version:6.0
// An example package that depends on SwiftPEFT by path and applies LoRA to a model of its own.
import PackageDescription

let package = Package(
    name: "OwnModelLoRA",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "SwiftPEFT", path: "../.."),
    ],
    targets: [
        .executableTarget(name: "OwnModelLoRA", dependencies: [.product(name: "SwiftPEFT", package: "SwiftPEFT")]),
    ]
)
