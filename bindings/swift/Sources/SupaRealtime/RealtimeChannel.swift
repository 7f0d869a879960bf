// Channels: closures (`onBroadcast`, `onPostgresChange`, `onPresenceChange`, `onStatusChange`)
// and the same as AsyncStreams (`broadcastStream`, `postgresChange`, `presenceChange`,
// `statusChange`), in supabase-swift's shape.

import Foundation
import SupaRealtimeGenerated

typealias FfiChannel = SupaRealtimeGenerated.RealtimeChannel

/// Channel settings, set in `RealtimeClient.channel(_:configure:)` (supabase-swift's names).
public struct RealtimeChannelConfig {
    public struct Broadcast {
        /// Receive your own broadcasts.
        public var receiveOwnBroadcasts = false
        /// Ask the server to ack broadcasts: `broadcast(event:message:)` then returns on the ack.
        public var acknowledgeBroadcasts = false
        /// Replay stored broadcasts on join (private channels only): since this Unix time in
        /// milliseconds, at most `replayLimit` (the server's cap: 25).
        public var replaySinceMs: Int64?
        public var replayLimit: UInt32?
        /// Ask for the `system` message that says replication is ready (`replicationReady()`).
        public var replicationReady = false
    }

    public struct Presence {
        /// This client's presence key; empty lets the server pick one.
        public var key = ""
        /// Presence on at join (a presence callback or stream made before subscribing also turns it on).
        public var enabled = false
    }

    public var broadcast = Broadcast()
    public var presence = Presence()
    /// A private channel, authorized by RLS on `realtime.messages`.
    public var isPrivate = false
    /// With postgres bindings, report SUBSCRIBED only once changes flow.
    public var waitForPostgresReady = true
    /// Gap fill (private channels only): after a rejoin, replay the broadcasts stored during
    /// the outage and drop those already delivered.
    public var autoReplay = false

    func ffiOptions() -> ChannelOptions {
        ChannelOptions(
            broadcastSelf: broadcast.receiveOwnBroadcasts,
            broadcastAck: broadcast.acknowledgeBroadcasts,
            presenceKey: presence.key,
            presenceEnabled: presence.enabled,
            private: isPrivate,
            waitForPostgresReady: waitForPostgresReady,
            replaySinceMs: broadcast.replaySinceMs,
            replayLimit: broadcast.replayLimit,
            replicationReady: broadcast.replicationReady,
            autoReplay: autoReplay
        )
    }
}

/// A channel's state, as supabase-swift names it. After a recoverable error the channel is
/// `.subscribing` again (the client rejoins by itself); a terminal error or a leave ends in
/// `.unsubscribed`.
public enum RealtimeChannelStatus: Sendable {
    case unsubscribed, subscribing, subscribed, unsubscribing
}

/// A received broadcast: a JSON payload (`decode(as:)`) or bytes (`data`, protocol 2.0.0).
public struct BroadcastMessage {
    public let topic: String
    public let event: String
    /// The payload's JSON text; nil for a binary broadcast.
    public let json: String?
    /// The bytes of a binary broadcast.
    public let data: Data?
    /// The stored message's id, for persisted messages.
    public let id: String?
    /// Delivered by a replay on join, not live.
    public let replayed: Bool
    let decoder: JSONDecoder

    /// The JSON payload decoded as `T`.
    public func decode<T: Decodable>(as _: T.Type = T.self) throws -> T {
        guard let json else { throw RealtimeError.invalidArgument(reason: "binary broadcast '\(event)' has no JSON payload") }
        return try decoder.decode(T.self, from: Data(json.utf8))
    }
}

/// What `postgresChange(_:schema:table:filter:)` can listen for: `InsertAction`, `UpdateAction`,
/// `DeleteAction`, or `AnyAction` for all three.
public protocol PostgresAction {
    static var eventType: String { get }
    /// The action for `change`, or nil when it is of another type.
    init?(change: PostgresChange)
}

/// A database change's common fields (values converted by column type, as realtime-js does).
public struct PostgresChange {
    /// `INSERT`, `UPDATE` or `DELETE`.
    public let eventType: String
    public let schema: String
    public let table: String
    /// ISO 8601 commit time, as the server sends it.
    public let commitTimestamp: String
    let newJson: String
    let oldJson: String
    let decoder: JSONDecoder

    init(_ c: PostgresChangePayload, _ decoder: JSONDecoder) {
        eventType = c.eventType
        schema = c.schema
        table = c.table
        commitTimestamp = c.commitTimestamp
        newJson = c.newJson
        oldJson = c.oldJson
        self.decoder = decoder
    }
}

/// A change carrying the new row.
public protocol HasRecord {
    var change: PostgresChange { get }
}

/// A change carrying the old row's replica-identity columns.
public protocol HasOldRecord {
    var change: PostgresChange { get }
}

public extension HasRecord {
    /// The new row as JSON text.
    var recordJSON: String { change.newJson }
    func decodeRecord<T: Decodable>(as _: T.Type = T.self) throws -> T {
        try change.decoder.decode(T.self, from: Data(change.newJson.utf8))
    }
}

public extension HasOldRecord {
    /// The old row's replica-identity columns as JSON text.
    var oldRecordJSON: String { change.oldJson }
    func decodeOldRecord<T: Decodable>(as _: T.Type = T.self) throws -> T {
        try change.decoder.decode(T.self, from: Data(change.oldJson.utf8))
    }
}

public struct InsertAction: PostgresAction, HasRecord {
    public static let eventType = "INSERT"
    public let change: PostgresChange
    public init?(change: PostgresChange) {
        guard change.eventType == "INSERT" else { return nil }
        self.change = change
    }
}

public struct UpdateAction: PostgresAction, HasRecord, HasOldRecord {
    public static let eventType = "UPDATE"
    public let change: PostgresChange
    public init?(change: PostgresChange) {
        guard change.eventType == "UPDATE" else { return nil }
        self.change = change
    }
}

public struct DeleteAction: PostgresAction, HasOldRecord {
    public static let eventType = "DELETE"
    public let change: PostgresChange
    public init?(change: PostgresChange) {
        guard change.eventType == "DELETE" else { return nil }
        self.change = change
    }
}

/// Any of the three.
public enum AnyAction: PostgresAction {
    case insert(InsertAction)
    case update(UpdateAction)
    case delete(DeleteAction)

    public static let eventType = "*"
    public init?(change: PostgresChange) {
        if let a = InsertAction(change: change) {
            self = .insert(a)
        } else if let a = UpdateAction(change: change) {
            self = .update(a)
        } else if let a = DeleteAction(change: change) {
            self = .delete(a)
        } else {
            return nil
        }
    }
}

/// One tracked presence: its `presence_ref` and the state its client tracked (JSON text).
public struct Presence {
    public let ref: String
    public let stateJSON: String
    let decoder: JSONDecoder

    public func decodeState<T: Decodable>(as _: T.Type = T.self) throws -> T {
        try decoder.decode(T.self, from: Data(stateJSON.utf8))
    }
}

/// Presences that joined and left, by key.
public struct PresenceAction {
    public let joins: [String: [Presence]]
    public let leaves: [String: [Presence]]

    /// The joined states decoded as `T`; those that do not decode are skipped unless
    /// `ignoreOtherTypes` is false.
    public func decodeJoins<T: Decodable>(as _: T.Type = T.self, ignoreOtherTypes: Bool = true) throws -> [T] {
        try Self.decode(joins, ignoreOtherTypes)
    }

    public func decodeLeaves<T: Decodable>(as _: T.Type = T.self, ignoreOtherTypes: Bool = true) throws -> [T] {
        try Self.decode(leaves, ignoreOtherTypes)
    }

    private static func decode<T: Decodable>(_ m: [String: [Presence]], _ lenient: Bool) throws -> [T] {
        var out: [T] = []
        for presence in m.values.joined() {
            if lenient {
                if let v = try? presence.decodeState(as: T.self) { out.append(v) }
            } else {
                out.append(try presence.decodeState(as: T.self))
            }
        }
        return out
    }
}

/// Keeps a callback registered; cancels it on `cancel()` or when released (as in supabase-swift).
public final class RealtimeSubscription: @unchecked Sendable {
    private let onCancel: () -> Void
    private let lock = NSLock()
    private var cancelled = false

    init(_ onCancel: @escaping () -> Void) {
        self.onCancel = onCancel
    }

    deinit { cancel() }

    public func cancel() {
        lock.lock()
        let first = !cancelled
        cancelled = true
        lock.unlock()
        if first { onCancel() }
    }
}

/// Callbacks registered for one kind of value, called on the dispatch thread. Once finished
/// (the channel ended), a new callback is never called and a new stream finishes at once.
final class Observers<T>: @unchecked Sendable {
    private struct Entry {
        let deliver: (T) -> Void
        let finish: () -> Void
    }

    private let lock = NSLock()
    private var entries: [UInt64: Entry] = [:]
    private var nextId: UInt64 = 0
    private var finished = false

    var isEmpty: Bool {
        lock.lock()
        defer { lock.unlock() }
        return entries.isEmpty
    }

    func add(_ deliver: @escaping (T) -> Void, finish: @escaping () -> Void = {}) -> RealtimeSubscription {
        lock.lock()
        let id = nextId
        nextId += 1
        let done = finished
        if !done { entries[id] = Entry(deliver: deliver, finish: finish) }
        lock.unlock()
        if done { finish() }
        return RealtimeSubscription { [weak self] in self?.remove(id) }
    }

    private func remove(_ id: UInt64) {
        lock.lock()
        entries[id] = nil
        lock.unlock()
    }

    func emit(_ value: T) {
        lock.lock()
        let current = Array(entries.values)
        lock.unlock()
        for entry in current { entry.deliver(value) }
    }

    /// The channel is gone: every stream ends.
    func finishAll() {
        lock.lock()
        finished = true
        let current = Array(entries.values)
        entries = [:]
        lock.unlock()
        for entry in current { entry.finish() }
    }

    /// An AsyncStream fed by a new observer, removed when iteration stops.
    func stream() -> AsyncStream<T> {
        let (stream, continuation) = AsyncStream.makeStream(of: T.self)
        let subscription = add({ continuation.yield($0) }, finish: { continuation.finish() })
        continuation.onTermination = { _ in subscription.cancel() }
        return stream
    }
}

/// The one library listener of a channel: statuses and broadcasts cross once, whatever the
/// number of callbacks and streams.
private final class ChannelHub: EventListener, @unchecked Sendable {
    let broadcasts = Observers<BroadcastMessage>()
    let statuses = Observers<RealtimeChannelStatus>()
    var onFinish: () -> Void = {}
    let decoder: JSONDecoder
    private let lock = NSLock()
    private var current = RealtimeChannelStatus.unsubscribed
    private(set) var finished = false

    init(decoder: JSONDecoder) {
        self.decoder = decoder
    }

    var status: RealtimeChannelStatus {
        lock.lock()
        defer { lock.unlock() }
        return current
    }

    /// Sets the status (unless `only` is given and the status is no longer `only`).
    func setStatus(_ s: RealtimeChannelStatus, ifStill only: RealtimeChannelStatus? = nil) {
        lock.lock()
        let change = (only == nil || current == only) && current != s
        if change { current = s }
        lock.unlock()
        if change { statuses.emit(s) }
    }

    func onEvent(event: RealtimeEvent) throws {
        switch event {
        case let .broadcast(message):
            if broadcasts.isEmpty { return }
            var json: String?
            var data: Data?
            switch message.payload {
            case let .json(text): json = text
            case let .binary(bytes): data = bytes
            }
            broadcasts.emit(BroadcastMessage(
                topic: message.topic, event: message.event, json: json, data: data,
                id: message.id, replayed: message.replayed, decoder: decoder))
        case let .channelStatus(_, status, _, errorKind, tokenRejected):
            let terminal = status == .closed || errorKind == .terminal || tokenRejected
            if status == .subscribed {
                setStatus(.subscribed)
            } else if terminal {
                setStatus(.unsubscribed)
            } else {
                setStatus(.subscribing)
            }
            // From a terminal status on, the client hands out a new channel for this name; the
            // streams finish on the final CLOSED, which every ending path sends exactly once
            // (left, removed, client shut down, or the server's reason).
            if terminal {
                lock.lock()
                finished = true
                lock.unlock()
            }
            if status == .closed { onFinish() }
        default:
            break
        }
    }
}

private final class ChangeListener: PostgresChangeListener, @unchecked Sendable {
    let observers = Observers<PostgresChangePayload>()
    func onChange(change: PostgresChangePayload) throws { observers.emit(change) }
}

private final class PresenceRelay: PresenceListener, @unchecked Sendable {
    let observers = Observers<PresenceAction>()
    let decoder: JSONDecoder

    init(decoder: JSONDecoder) {
        self.decoder = decoder
    }

    func onPresence(event: PresenceEvent) throws {
        switch event {
        case let .join(_, key, _, newJson):
            observers.emit(PresenceAction(joins: [key: presences(newJson, decoder)], leaves: [:]))
        case let .leave(_, key, _, leftJson):
            observers.emit(PresenceAction(joins: [:], leaves: [key: presences(leftJson, decoder)]))
        case .sync:
            break
        }
    }
}

/// `[{"presence_ref": ..., ...state}]` as presences.
func presences(_ json: String, _ decoder: JSONDecoder) -> [Presence] {
    guard let metas = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]] else { return [] }
    return metas.map { meta in
        var state = meta
        let ref = state.removeValue(forKey: "presence_ref") as? String ?? ""
        let data = (try? JSONSerialization.data(withJSONObject: state, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Presence(ref: ref, stateJSON: String(decoding: data, as: UTF8.self), decoder: decoder)
    }
}

/// One channel (topic `realtime:<name>`), from `RealtimeClient.channel(_:configure:)`. Register
/// postgres and presence callbacks (or streams) before `subscribe()`. A channel is single-use:
/// once it is unsubscribed or failed for good, get a new one.
public final class RealtimeChannel: @unchecked Sendable {
    let ffi: FfiChannel
    /// The wire topic, `realtime:<name>`.
    public let topic: String
    private let decoder: JSONDecoder
    private let encoder: JSONEncoder
    private let hub: ChannelHub
    private let lock = NSLock()
    private var presence: PresenceRelay?
    private var changes: [ChangeListener] = []

    init(ffi: FfiChannel, decoder: JSONDecoder, encoder: JSONEncoder) throws {
        self.ffi = ffi
        topic = ffi.topic()
        self.decoder = decoder
        self.encoder = encoder
        hub = ChannelHub(decoder: decoder)
        _ = try ffiCall { try ffi.onEvent(listener: hub) }
        hub.onFinish = { [weak self] in self?.finishAll() }
    }

    var isFinished: Bool { hub.finished }

    private func finishAll() {
        hub.broadcasts.finishAll()
        hub.statuses.finishAll()
        lock.lock()
        let relays = changes
        let presenceRelay = presence
        lock.unlock()
        for relay in relays { relay.observers.finishAll() }
        presenceRelay?.observers.finishAll()
    }

    // MARK: status

    public var status: RealtimeChannelStatus { hub.status }

    /// Status changes from now on.
    public var statusChange: AsyncStream<RealtimeChannelStatus> { hub.statuses.stream() }

    public func onStatusChange(_ callback: @escaping @Sendable (RealtimeChannelStatus) -> Void) -> RealtimeSubscription {
        hub.statuses.add(callback)
    }

    /// Joins (connecting the client if needed); returns on SUBSCRIBED and throws
    /// `RealtimeError` with the server's reason otherwise (`channelError`, `timeout`).
    public func subscribe() async throws {
        hub.setStatus(.subscribing, ifStill: .unsubscribed)
        try await ffiCall { try await ffi.subscribe() }
        hub.setStatus(.subscribed, ifStill: .subscribing)
    }

    /// Leaves; returns once the server confirmed (or the push timed out).
    public func unsubscribe() async throws {
        hub.setStatus(.unsubscribing, ifStill: .subscribed)
        try await ffiCall { try await ffi.unsubscribe() }
    }

    // MARK: broadcast

    /// Broadcasts `message` encoded as JSON; with `acknowledgeBroadcasts` it returns once the
    /// server acknowledged.
    public func broadcast(event: String, message: some Encodable) async throws {
        let json = String(decoding: try encoder.encode(message), as: UTF8.self)
        try await ffiCall { try await ffi.sendBroadcast(event: event, payload: .json(json: json)) }
    }

    /// Broadcasts bytes (a binary frame, protocol 2.0.0).
    public func broadcast(event: String, data: Data) async throws {
        try await ffiCall { try await ffi.sendBroadcast(event: event, payload: .binary(data: data)) }
    }

    /// Broadcasts over REST: works without joining.
    public func httpSend(event: String, message: some Encodable) async throws {
        let json = String(decoding: try encoder.encode(message), as: UTF8.self)
        try await ffiCall { try await ffi.httpSend(event: event, payload: .json(json: json)) }
    }

    /// Broadcasts `message` and has the server store it (private channels only) for
    /// `ttlSeconds` (0: the server's retention), so that a join with replay replays it; over
    /// REST with `http`.
    public func broadcastPersisted(event: String, message: some Encodable, ttlSeconds: UInt32 = 0, http: Bool = false) async throws {
        let json = String(decoding: try encoder.encode(message), as: UTF8.self)
        if http {
            try await ffiCall { try await ffi.httpSendPersist(event: event, payload: .json(json: json), ttlSeconds: ttlSeconds) }
        } else {
            try await ffiCall { try await ffi.sendBroadcastPersist(event: event, payload: .json(json: json), ttlSeconds: ttlSeconds) }
        }
    }

    /// Returns once the server said the channel's replication is ready (`replicationReady`).
    public func replicationReady() async throws {
        try await ffiCall { try await ffi.replicationReady() }
    }

    /// Broadcasts named `event` (case-insensitive; `"*"` for all) on the dispatch thread.
    public func onBroadcast(event: String, callback: @escaping @Sendable (BroadcastMessage) -> Void) -> RealtimeSubscription {
        hub.broadcasts.add { message in
            if event == "*" || message.event.caseInsensitiveCompare(event) == .orderedSame { callback(message) }
        }
    }

    /// Broadcasts named `event` from now on, as a stream.
    public func broadcastStream(event: String) -> AsyncStream<BroadcastMessage> {
        let (stream, continuation) = AsyncStream.makeStream(of: BroadcastMessage.self)
        let subscription = hub.broadcasts.add({ message in
            if event == "*" || message.event.caseInsensitiveCompare(event) == .orderedSame { continuation.yield(message) }
        }, finish: { continuation.finish() })
        continuation.onTermination = { _ in subscription.cancel() }
        return stream
    }

    // MARK: postgres changes

    /// Database changes of type `Action` in `schema`, narrowed by `table` and a PostgREST-style
    /// `filter` (`room_id=eq.1`). The binding is part of the join: call this before `subscribe()`.
    public func onPostgresChange<Action: PostgresAction>(
        _: Action.Type, schema: String = "public", table: String? = nil, filter: String? = nil,
        callback: @escaping @Sendable (Action) -> Void
    ) throws -> RealtimeSubscription {
        let relay = try binding(Action.self, schema: schema, table: table, filter: filter)
        let decoder = self.decoder
        return relay.observers.add { change in
            if let action = Action(change: PostgresChange(change, decoder)) { callback(action) }
        }
    }

    /// The same as a stream. A binding the library refuses (after `subscribe()`) gives a stream
    /// that ends at once; `onPostgresChange` throws the reason instead.
    public func postgresChange<Action: PostgresAction>(
        _: Action.Type, schema: String = "public", table: String? = nil, filter: String? = nil
    ) -> AsyncStream<Action> {
        let (stream, continuation) = AsyncStream.makeStream(of: Action.self)
        guard let relay = try? binding(Action.self, schema: schema, table: table, filter: filter) else {
            continuation.finish()
            return stream
        }
        let decoder = self.decoder
        let subscription = relay.observers.add({ change in
            if let action = Action(change: PostgresChange(change, decoder)) { continuation.yield(action) }
        }, finish: { continuation.finish() })
        continuation.onTermination = { _ in subscription.cancel() }
        return stream
    }

    private func binding<Action: PostgresAction>(
        _: Action.Type, schema: String, table: String?, filter: String?
    ) throws -> ChangeListener {
        let relay = ChangeListener()
        let spec = PostgresChangesFilter(event: Action.eventType, schema: schema, table: table, filter: filter)
        _ = try ffiCall { try ffi.onPostgresChanges(filter: spec, listener: relay) }
        lock.lock()
        changes.append(relay)
        lock.unlock()
        return relay
    }

    // MARK: presence

    /// Tracks this client's presence with `state` (encoded as a JSON object).
    public func track(_ state: some Encodable) async throws {
        let json = String(decoding: try encoder.encode(state), as: UTF8.self)
        try await ffiCall { try await ffi.track(metaJson: json) }
    }

    public func untrack() async throws {
        try await ffiCall { try await ffi.untrack() }
    }

    /// The current presence state: key -> the presences tracked under it.
    public func presenceState() throws -> [String: [Presence]] {
        let json = try ffiCall { try ffi.presenceStateJson() }
        guard let state = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return [:] }
        var out: [String: [Presence]] = [:]
        for (key, metas) in state {
            let data = (try? JSONSerialization.data(withJSONObject: metas)) ?? Data("[]".utf8)
            out[key] = presences(String(decoding: data, as: UTF8.self), decoder)
        }
        return out
    }

    /// Presence joins and leaves on the dispatch thread. The first presence callback or stream
    /// turns presence on for this channel: make it before `subscribe()`.
    public func onPresenceChange(_ callback: @escaping @Sendable (PresenceAction) -> Void) throws -> RealtimeSubscription {
        try presenceRelay().observers.add(callback)
    }

    /// Presence joins and leaves from now on, as a stream (which ends at once after shutdown).
    public func presenceChange() -> AsyncStream<PresenceAction> {
        guard let relay = try? presenceRelay() else {
            let (stream, continuation) = AsyncStream.makeStream(of: PresenceAction.self)
            continuation.finish()
            return stream
        }
        return relay.observers.stream()
    }

    private func presenceRelay() throws -> PresenceRelay {
        lock.lock()
        defer { lock.unlock() }
        if let presence { return presence }
        let relay = PresenceRelay(decoder: decoder)
        _ = try ffiCall { try ffi.onPresence(listener: relay) }
        presence = relay
        return relay
    }
}
