// The library's log records (connects, joins, reconnects, refusals, errors) for Swift code:
// off by default, and costing nothing while off.

import Foundation
import SupaRealtimeGenerated

/// The severity of a library log record, most severe first.
public enum RealtimeLogLevel: Int, Sendable, Comparable {
    case error = 1, warn, info, debug, trace

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// Process-wide settings of the library.
public enum Realtime {
    /// Sends the library's log records up to `level` to `logger`, for every client of the
    /// process; `nil` turns logging off again (the default). The closure is called on the
    /// library's `supa-log` thread, one record at a time, in order, never on its network
    /// thread. `target` is the library module (`supa_realtime::engine`, ...).
    ///
    /// ```swift
    /// try Realtime.setLogger(level: .debug) { level, target, message in print(level, target, message) }
    /// ```
    public static func setLogger(
        level: RealtimeLogLevel = .info,
        _ logger: (@Sendable (RealtimeLogLevel, String, String) -> Void)?
    ) throws {
        let adapter = logger.map { LoggerAdapter($0) }
        try ffiCall { try SupaRealtimeGenerated.setLogger(level: adapter == nil ? 0 : UInt32(level.rawValue), logger: adapter) }
    }
}

private final class LoggerAdapter: SupaRealtimeGenerated.Logger, @unchecked Sendable {
    let deliver: @Sendable (RealtimeLogLevel, String, String) -> Void

    init(_ deliver: @escaping @Sendable (RealtimeLogLevel, String, String) -> Void) {
        self.deliver = deliver
    }

    func log(level: UInt32, target: String, message: String) throws {
        deliver(RealtimeLogLevel(rawValue: Int(level)) ?? .trace, target, message)
    }
}
