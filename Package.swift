// swift-tools-version:5.9
// edge-mrcnn: torchvision Mask R-CNN R50-FPN inference as one small static binary.
// The library and the CLI use no Foundation (the aarch64 runtime has none): Glibc, C and the stdlib only.
import PackageDescription

let package = Package(
    name: "edge-mrcnn",
    products: [
        .executable(name: "edge-mrcnn", targets: ["edge-mrcnn"]),
        .library(name: "EdgeMRCNN", targets: ["EdgeMRCNN"]),
    ],
    targets: [
        // C kernels (scalar reference + per-ISA paths + one dispatch point) and the libjpeg wrapper.
        .target(
            name: "CShim",
            path: "CShim",
            cSettings: [
                .headerSearchPath("include"),
                // Kernels are always optimised, also in debug builds (tests run real models).
                .unsafeFlags(["-O3", "-fno-strict-aliasing", "-Wall", "-Wno-unused-function"]),
            ],
            linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("m")]
        ),
        .target(
            name: "EdgeMRCNN",
            dependencies: ["CShim"],
            path: "Sources/EdgeMRCNN"
        ),
        .executableTarget(
            name: "edge-mrcnn",
            dependencies: ["EdgeMRCNN", "CShim"],
            path: "Sources/edge-mrcnn"
        ),
        .testTarget(
            name: "EdgeMRCNNTests",
            // edge-mrcnn: the CLI's argument parser is unit-tested, and the CLI tests run the binary.
            dependencies: ["EdgeMRCNN", "CShim", "edge-mrcnn"],
            path: "Tests/EdgeMRCNNTests"
        ),
    ]
)
