// swift-tools-version:6.0
import PackageDescription

// Release builds (-O, checked arithmetic) are what the tests and benchmarks use:
// STYLE.md asks that numerics pass without -Ounchecked / fast-math.
let package = Package(
    name: "spade-dist",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "spade-dist", targets: ["spade-dist"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // C libraries seen from Swift.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .target(name: "CImageIO",
                cSettings: [.unsafeFlags(["-I/usr/include/libpng16"])],
                linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("jpeg")]),

        // -fno-builtin-memcpy: keeps clang from splitting Adam's fused loop into memcpy + loop
        // (one more pass over every gradient).
        .target(name: "CKernels",
                cSettings: [.unsafeFlags(["-O3", "-fno-math-errno", "-ffp-contract=off", "-fno-builtin-memcpy"])]),

        // Pure Swift modules.
        .target(name: "SafeTensors"),
        .target(name: "SpadeCore", dependencies: ["CBLAS", "CKernels"]),
        .target(name: "SpadeNN", dependencies: ["SpadeCore", "CKernels"]),
        .target(name: "SpadeDist", dependencies: ["CMPI", "CKernels"], exclude: ["README.md"]),
        .target(name: "SpadeData", dependencies: ["SpadeCore", "CImageIO"], exclude: ["README.md"]),
        .target(name: "SpadeTrain", dependencies: [
            "SpadeCore", "SpadeNN", "SpadeDist", "SpadeData", "SafeTensors",
            .product(name: "Yams", package: "Yams"),
        ]),
        // Multi-rank checks of SpadeDist, run under mpirun by SpadeDistTests and bench/.
        .executableTarget(name: "spade-dist-commcheck", dependencies: ["SpadeDist"]),
        .executableTarget(name: "spade-dist", dependencies: [
            "SpadeTrain",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Tests.
        .target(name: "SpadeTestSupport", dependencies: ["SafeTensors"], path: "Sources/SpadeTestSupport"),
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors", "SpadeTestSupport"]),
        .testTarget(name: "SpadeCoreTests", dependencies: ["SpadeCore", "SpadeTestSupport"]),
        .testTarget(name: "SpadeNNTests", dependencies: ["SpadeNN", "SpadeTestSupport"]),
        .testTarget(name: "SpadeDistTests", dependencies: ["SpadeDist", "SpadeCore", "SpadeTestSupport", "spade-dist-commcheck"]),
        .testTarget(name: "SpadeDataTests", dependencies: ["SpadeData", "SpadeCore", "SpadeTestSupport"]),
        .testTarget(name: "SpadeTrainTests", dependencies: ["SpadeTrain", "SpadeTestSupport"]),
        // End-to-end runs of the built spade-dist binary (directly and under mpirun).
        .testTarget(name: "CLITests", dependencies: ["SpadeTestSupport", "SafeTensors", "SpadeCore", "SpadeData", "spade-dist"]),
    ]
)
