// swift-tools-version:5.9
// The Swift example (not built in this project's CI: no Swift toolchain there).
//   cargo build --release      # libsupa_realtime
//   swift run -Xlinker -L../../target/release Example <url> <anon key> [table]
import PackageDescription

let package = Package(
    name: "Example",
    platforms: [.macOS(.v12)],
    dependencies: [.package(path: "../../bindings/swift")],
    targets: [
        .executableTarget(
            name: "Example",
            dependencies: [.product(name: "SupaRealtime", package: "swift")]
        ),
    ]
)
