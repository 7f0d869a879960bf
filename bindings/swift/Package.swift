// swift-tools-version:5.9
// Swift bindings of libsupa_realtime (uniffi). No Swift toolchain runs in this project's CI:
// the generated sources are kept current by `scripts/gen-bindings --check`; see README.md for
// building the native library and an XCFramework.
import PackageDescription

let package = Package(
    name: "SupaRealtime",
    platforms: [.macOS(.v12), .iOS(.v15)],
    products: [
        .library(name: "SupaRealtime", targets: ["SupaRealtime"]),
    ],
    targets: [
        // The C declarations of the uniffi scaffolding (generated header + module map). Links
        // libsupa_realtime: pass `-Xlinker -L<dir>` with the built library, or replace this target
        // with `.binaryTarget(name: "supa_realtimeFFI", path: "SupaRealtimeFFI.xcframework")`.
        .target(
            name: "supa_realtimeFFI",
            path: "Sources/supa_realtimeFFI",
            linkerSettings: [.linkedLibrary("supa_realtime")]
        ),
        // The generated Swift bindings (scripts/gen-bindings).
        .target(
            name: "SupaRealtimeFFI",
            dependencies: ["supa_realtimeFFI"],
            path: "Sources/SupaRealtimeFFI"
        ),
        // The thin idiomatic layer: AsyncStream of events, Codable payloads.
        .target(
            name: "SupaRealtime",
            dependencies: ["SupaRealtimeFFI"],
            path: "Sources/SupaRealtime"
        ),
    ]
)
