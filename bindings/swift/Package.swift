// swift-tools-version:5.9
// Swift bindings of libsupa_realtime (uniffi). No Swift toolchain runs in this project's CI:
// every Swift source is parsed with the tree-sitter Swift grammar and the calls from the API
// into the generated code are checked by name and labels (scripts/check-swift); see README.md.
import PackageDescription

let package = Package(
    name: "SupaRealtime",
    platforms: [.macOS(.v12), .iOS(.v15)],
    products: [
        .library(name: "SupaRealtime", targets: ["SupaRealtime"]),
    ],
    targets: [
        // C module: the uniffi scaffolding's C declarations (generated header + module map).
        // Links libsupa_realtime: pass `-Xlinker -L<dir>` with the built library, or replace this
        // target with `.binaryTarget(name: "SupaRealtimeCFFI", path: "SupaRealtimeCFFI.xcframework")`.
        .target(
            name: "SupaRealtimeCFFI",
            path: "Sources/SupaRealtimeCFFI",
            linkerSettings: [.linkedLibrary("supa_realtime")]
        ),
        // The uniffi-generated Swift (scripts/gen-bindings); an implementation detail.
        .target(
            name: "SupaRealtimeGenerated",
            dependencies: ["SupaRealtimeCFFI"],
            path: "Sources/SupaRealtimeGenerated"
        ),
        // The Swift API users import: closures and AsyncStreams in supabase-swift's shape.
        .target(
            name: "SupaRealtime",
            dependencies: ["SupaRealtimeGenerated"],
            path: "Sources/SupaRealtime"
        ),
    ]
)
