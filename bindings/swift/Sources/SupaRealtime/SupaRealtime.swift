// The idiomatic Swift layer over the generated bindings: AsyncStream of events and Codable
// payloads. Everything else (RealtimeClient, RealtimeChannel, async subscribe/sendBroadcast/
// track/unsubscribe, RealtimeError) is the generated API, re-exported as is.
//
// Listeners and streams are fed on the client's dispatch thread, never on the main actor:
// hop to it yourself (`await MainActor.run { ... }`).

import Foundation
@_exported import SupaRealtimeFFI

/// Feeds an AsyncStream from the dispatch thread.
private final class StreamListener: EventListener, @unchecked Sendable {
    let continuation: AsyncStream<RealtimeEvent>.Continuation
    let isLast: @Sendable (RealtimeEvent) -> Bool

    init(_ continuation: AsyncStream<RealtimeEvent>.Continuation,
         isLast: @escaping @Sendable (RealtimeEvent) -> Bool) {
        self.continuation = continuation
        self.isLast = isLast
    }

    func onEvent(event: RealtimeEvent) throws {
        continuation.yield(event)
        if isLast(event) { continuation.finish() }
    }
}

private let encoder = JSONEncoder()
private let decoder = JSONDecoder()

private func jsonString<T: Encodable>(_ value: T) throws -> String {
    String(decoding: try encoder.encode(value), as: UTF8.self)
}

private func decode<T: Decodable>(_ type: T.Type, _ json: String) throws -> T {
    try decoder.decode(type, from: Data(json.utf8))
}

public extension RealtimeClient {
    /// Creates a client with the default options.
    convenience init(url: String, apiKey: String, accessToken: String? = nil) throws {
        try self.init(options: ClientOptions(url: url, apiKey: apiKey, accessToken: accessToken),
                      tokenProvider: nil)
    }

    /// Every event of this client from now on; ends when the client shuts down.
    func events() -> AsyncStream<RealtimeEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: RealtimeEvent.self)
        let id = onEvent(listener: StreamListener(continuation) { event in
            if case .connectionStatus(.shutDown, _) = event { return true }
            return false
        })
        continuation.onTermination = { [weak self] _ in self?.removeListener(id: id) }
        return stream
    }
}

public extension RealtimeChannel {
    /// This channel's events from now on; ends after the channel's final `CLOSED` status.
    func events() -> AsyncStream<RealtimeEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: RealtimeEvent.self)
        let topic = self.topic()
        let id = onEvent(listener: StreamListener(continuation) { event in
            if case let .channelStatus(t, .closed, _, _, _) = event, t == topic { return true }
            return false
        })
        continuation.onTermination = { [weak self] _ in self?.removeListener(id: id) }
        return stream
    }

    /// Broadcasts `payload` as JSON; with `broadcastAck` returns once the server acknowledged.
    func send<T: Encodable>(_ event: String, _ payload: T) async throws {
        try await sendBroadcast(event: event, payload: .json(json: try jsonString(payload)))
    }

    /// Broadcasts raw bytes (a binary frame).
    func send(_ event: String, bytes: Data) async throws {
        try await sendBroadcast(event: event, payload: .binary(data: bytes))
    }

    /// Tracks this client's presence with `meta` (encoded as a JSON object).
    func track<T: Encodable>(_ meta: T) async throws {
        try await track(metaJson: try jsonString(meta))
    }

    /// key → metas, decoded as `T` (metas carry `presence_ref`).
    func presenceState<T: Decodable>(as type: T.Type) throws -> [String: [T]] {
        try decode([String: [T]].self, presenceStateJson())
    }
}

public extension Payload {
    /// Decodes a JSON payload; nil for a binary one.
    func decode<T: Decodable>(_ type: T.Type) throws -> T? {
        switch self {
        case let .json(json): return try SupaRealtime.decode(type, json)
        case .binary: return nil
        }
    }
}

public extension BroadcastMessage {
    func decode<T: Decodable>(_ type: T.Type) throws -> T? { try payload.decode(type) }
}

public extension PostgresChangePayload {
    /// The new row (INSERT/UPDATE) decoded as `T`.
    func decodeNew<T: Decodable>(_ type: T.Type) throws -> T { try decode(type, newJson) }
    /// The old row's replica-identity columns (UPDATE/DELETE) decoded as `T`.
    func decodeOld<T: Decodable>(_ type: T.Type) throws -> T { try decode(type, oldJson) }
}
