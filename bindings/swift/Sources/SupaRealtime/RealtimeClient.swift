// The Swift API of supa-realtime, in the shape of supabase-swift's Realtime (RealtimeClientV2):
// closures and AsyncStreams, Codable payloads, `async throws` calls. The uniffi-generated layer
// (module SupaRealtimeGenerated) stays an implementation detail: nothing here asks a user type
// to conform to a generated protocol.
//
// Callbacks and streams are fed on the client's dispatch thread (`supa-dispatch`), never on the
// main actor: hop with `await MainActor.run { ... }`.

import Foundation
import SupaRealtimeGenerated

typealias FfiClient = SupaRealtimeGenerated.RealtimeClient
typealias FfiError = SupaRealtimeGenerated.RealtimeError

/// Client settings. `nil` keeps the library default (realtime-js' values: heartbeat 25 s, push
/// timeout 10 s, reconnect 1/2/5/10 s).
public struct RealtimeClientOptions {
    /// A user JWT for channel joins; defaults to the API key.
    public var accessToken: String?
    /// Supplies a fresh token before each connect, rejoin and ahead of the JWT's expiry. Called
    /// on a library helper thread.
    public var accessTokenProvider: (@Sendable () async throws -> String?)?
    /// Extra query parameters of the WebSocket URL.
    public var params: [String: String]
    /// Extra HTTP headers on the upgrade request and REST calls.
    public var headers: [String: String]
    public var heartbeatInterval: TimeInterval?
    /// How long a join, leave, acknowledged broadcast or presence push waits for its reply.
    public var timeoutInterval: TimeInterval?
    public var reconnectDelays: [TimeInterval]?
    /// 0...1: each delay is scaled by a random factor in `[1 - j, 1 + j]`.
    public var reconnectJitter: Double?
    public var rejoinDelays: [TimeInterval]?
    /// Extra trusted root certificates (PEM).
    public var customCaPem: String?
    /// Events queued for slow callbacks before data events are dropped (reported as lagged).
    public var queueCapacity: Int?
    /// The largest WebSocket message read from the server, in bytes: default 16 MiB, at least
    /// 1024. A larger one is reported as a client error event and the connection is dropped
    /// and reconnected.
    public var maxMessageSize: Int?
    /// The largest frame decoded into events, in bytes: default 8 MiB, at least 1024. A larger
    /// one is skipped and reported; the connection stays up.
    public var maxPayloadSize: Int?
    /// Per channel, the presence keys kept: default 100,000, at least 1. A presence state or
    /// diff that would go over is not applied and is reported.
    public var maxPresenceKeys: Int?
    /// Per channel, the presence state's size as JSON text, in bytes: default 32 MiB, at least
    /// 1024; over it, as for `maxPresenceKeys`.
    public var maxPresenceSize: Int?
    /// Decodes and encodes payloads, records and presence states.
    public var decoder: JSONDecoder
    public var encoder: JSONEncoder

    public init(
        accessToken: String? = nil,
        accessTokenProvider: (@Sendable () async throws -> String?)? = nil,
        params: [String: String] = [:],
        headers: [String: String] = [:],
        heartbeatInterval: TimeInterval? = nil,
        timeoutInterval: TimeInterval? = nil,
        reconnectDelays: [TimeInterval]? = nil,
        reconnectJitter: Double? = nil,
        rejoinDelays: [TimeInterval]? = nil,
        customCaPem: String? = nil,
        queueCapacity: Int? = nil,
        maxMessageSize: Int? = nil,
        maxPayloadSize: Int? = nil,
        maxPresenceKeys: Int? = nil,
        maxPresenceSize: Int? = nil,
        decoder: JSONDecoder = JSONDecoder(),
        encoder: JSONEncoder = JSONEncoder()
    ) {
        self.accessToken = accessToken
        self.accessTokenProvider = accessTokenProvider
        self.params = params
        self.headers = headers
        self.heartbeatInterval = heartbeatInterval
        self.timeoutInterval = timeoutInterval
        self.reconnectDelays = reconnectDelays
        self.reconnectJitter = reconnectJitter
        self.rejoinDelays = rejoinDelays
        self.customCaPem = customCaPem
        self.queueCapacity = queueCapacity
        self.maxMessageSize = maxMessageSize
        self.maxPayloadSize = maxPayloadSize
        self.maxPresenceKeys = maxPresenceKeys
        self.maxPresenceSize = maxPresenceSize
        self.decoder = decoder
        self.encoder = encoder
    }

    func ffiOptions(url: String, apiKey: String) throws -> ClientOptions {
        try ClientOptions(
            url: url,
            apiKey: apiKey,
            accessToken: accessToken,
            params: params,
            headers: headers,
            heartbeatIntervalMs: heartbeatInterval.map(millis),
            pushTimeoutMs: timeoutInterval.map(millis),
            reconnectDelaysMs: reconnectDelays?.map(millis),
            reconnectJitter: reconnectJitter,
            rejoinDelaysMs: rejoinDelays?.map(millis),
            customCaPem: customCaPem,
            queueCapacity: queueCapacity.map { UInt32(clamping: $0) },
            maxMessageSize: bound("max_message_size", maxMessageSize),
            maxPayloadSize: bound("max_payload_size", maxPayloadSize),
            maxPresenceKeys: bound("max_presence_keys", maxPresenceKeys),
            maxPresenceSize: bound("max_presence_size", maxPresenceSize)
        )
    }
}

/// A bound as the library takes it (the library checks its minimum; errors name the option
/// as every language does).
func bound(_ name: String, _ value: Int?) throws -> UInt64? {
    guard let value else { return nil }
    guard value >= 0 else { throw RealtimeError.invalidArgument(reason: "\(name) must not be negative (got \(value))") }
    return UInt64(value)
}

func millis(_ t: TimeInterval) -> UInt64 { UInt64(max(0, t * 1000).rounded()) }

/// The socket's state.
public enum RealtimeClientStatus: Sendable {
    case disconnected, connecting, connected, shutDown

    init(_ s: ConnectionState) {
        switch s {
        case .disconnected: self = .disconnected
        case .connecting: self = .connecting
        case .connected: self = .connected
        case .shutDown: self = .shutDown
        }
    }
}

/// Everything a call can fail with, one case per cause; `description` names the cause with
/// the text the server or the system gave.
///
/// ```swift
/// do {
///     try await channel.subscribe()
/// } catch RealtimeError.authRejected(_, let body) {       // wrong or expired API key / token
///     print("the server refused the key: \(body)")
/// } catch RealtimeError.connectionRefused {               // the server is not running
///     print("is the server running?")
/// } catch let error as RealtimeError {
///     print(error)                                         // e.g. "channel error: Unauthorized: ..."
/// }
/// ```
public enum RealtimeError: Error, Sendable, Equatable, CustomStringConvertible, LocalizedError {
    /// A caller-supplied value is unusable (bad URL, malformed JSON, a bound below its minimum, ...).
    case invalidArgument(reason: String)
    /// The call needs a connected socket or a joined channel.
    case notConnected
    /// No reply in time (a join with no other cause to report: the client keeps trying).
    case timeout
    /// The server refused a join or a push with `reason`, its text unchanged
    /// (`InvalidJWTToken: Token has expired 120 seconds ago`); `recoverable` says whether the
    /// client keeps retrying by itself. The two refusals below have cases of their own.
    case channelError(reason: String, recoverable: Bool)
    /// Too many channels on this connection (`ChannelRateLimitReached`; the client retries).
    case channelRateLimitReached(reason: String)
    /// A private channel the token may not join (`Unauthorized`, `PrivateOnly`).
    case unauthorized(reason: String)
    /// A blocking call was made on the library's dispatch thread.
    case wouldDeadlock
    /// The client was shut down (`close()`, `shutdown()`): every later call fails with this.
    case shutdown
    /// 401 or 403 from the server: it refused the API key or the access token (wrong, expired).
    case authRejected(status: Int, body: String)
    /// 404: nothing answers at this URL's path (it should end in `/realtime/v1`).
    case notFound(body: String)
    /// Any other HTTP status (the WebSocket upgrade, or `httpSend`), with the server's reason.
    case http(status: Int, body: String)
    case tls(reason: String)
    /// The server's name did not resolve (DNS, /etc/hosts).
    case hostNotFound(reason: String)
    /// Nothing listens at the address: is the server running?
    case connectionRefused(reason: String)
    /// Any other transport problem (unreachable, reset, a connect timeout, a protocol error).
    case io(reason: String)
    /// A callback (token provider) threw.
    case callback(reason: String)

    init(_ e: FfiError) {
        switch e {
        case let .InvalidArgument(reason): self = .invalidArgument(reason: reason)
        case .NotConnected: self = .notConnected
        case .Timeout: self = .timeout
        case let .ChannelError(reason, recoverable): self = Self.refusal(reason, recoverable)
        case .WouldDeadlock: self = .wouldDeadlock
        case .Shutdown: self = .shutdown
        case let .Http(status, body):
            switch status {
            case 401, 403: self = .authRejected(status: Int(status), body: body)
            case 404: self = .notFound(body: body)
            default: self = .http(status: Int(status), body: body)
            }
        case let .Tls(reason): self = .tls(reason: reason)
        case let .Io(reason, kind):
            switch kind {
            case .hostNotFound: self = .hostNotFound(reason: reason)
            case .connectionRefused: self = .connectionRefused(reason: reason)
            case .other: self = .io(reason: reason)
            }
        case let .Callback(reason): self = .callback(reason: reason)
        }
    }

    /// A server refusal by upstream's error code, the text before the first `:`.
    static func refusal(_ reason: String, _ recoverable: Bool) -> RealtimeError {
        let code = reason.split(separator: ":", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        switch code {
        case "ChannelRateLimitReached": return .channelRateLimitReached(reason: reason)
        case "Unauthorized", "PrivateOnly": return .unauthorized(reason: reason)
        default: return .channelError(reason: reason, recoverable: recoverable)
        }
    }

    public var description: String {
        switch self {
        case let .invalidArgument(reason): return "invalid argument: \(reason)"
        case .notConnected: return "not connected: the call needs a connected socket or a joined channel"
        case .timeout: return "timed out: no reply from the server in time"
        case let .channelError(reason, _), let .channelRateLimitReached(reason), let .unauthorized(reason):
            return "channel error: \(reason)"
        case .wouldDeadlock: return "blocking call on the dispatch thread would deadlock"
        case .shutdown: return "client shut down"
        case let .authRejected(status, body): return "HTTP \(status): the server refused the API key or token: \(body)"
        case let .notFound(body): return "HTTP 404: \(body)"
        case let .http(status, body): return "HTTP \(status): \(body)"
        case let .tls(reason): return "TLS error: \(reason)"
        case let .hostNotFound(reason): return "host not found: \(reason)"
        case let .connectionRefused(reason): return "connection refused: \(reason)"
        case let .io(reason): return "I/O error: \(reason)"
        case let .callback(reason): return "callback failed: \(reason)"
        }
    }

    public var errorDescription: String? { description }
}

/// Runs a call into the generated layer, turning its errors into `RealtimeError`.
func ffiCall<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as FfiError { throw RealtimeError(e) }
}

func ffiCall<T>(_ body: () async throws -> T) async throws -> T {
    do { return try await body() } catch let e as FfiError { throw RealtimeError(e) }
}

/// A snapshot of the client's counters.
public struct RealtimeMetrics: Sendable {
    public let connects: UInt64
    public let reconnects: UInt64
    public let messagesIn: UInt64
    public let messagesOut: UInt64
    /// The last heartbeat round trip, and the median / 99th percentile of the last 128 (seconds).
    public let heartbeatRTT: TimeInterval?
    public let heartbeatRTTp50: TimeInterval?
    public let heartbeatRTTp99: TimeInterval?
    public let timeDisconnected: TimeInterval
    public let queueDepth: UInt64
    /// Data events dropped because callbacks fell behind the bounded queue.
    public let droppedEvents: UInt64
    /// Per live channel topic: time from its last (re)join attempt to SUBSCRIBED (seconds).
    public let joinLatency: [String: TimeInterval]

    init(_ m: Metrics) {
        connects = m.connects
        reconnects = m.reconnects
        messagesIn = m.messagesIn
        messagesOut = m.messagesOut
        heartbeatRTT = m.heartbeatRttMs.map { $0 / 1000 }
        heartbeatRTTp50 = m.heartbeatRttP50Ms.map { $0 / 1000 }
        heartbeatRTTp99 = m.heartbeatRttP99Ms.map { $0 / 1000 }
        timeDisconnected = m.timeDisconnectedMs / 1000
        queueDepth = m.queueDepth
        droppedEvents = m.droppedEvents
        var latency: [String: TimeInterval] = [:]
        for entry in m.joinLatency { latency[entry.topic] = entry.latencyMs / 1000 }
        joinLatency = latency
    }
}

/// Calls an async token closure from the library's helper thread (which may block).
final class TokenAdapter: TokenProvider, @unchecked Sendable {
    private let provider: @Sendable () async throws -> String?

    init(_ provider: @escaping @Sendable () async throws -> String?) {
        self.provider = provider
    }

    func token() throws -> String? {
        let done = DispatchSemaphore(value: 0)
        let box = Box<Result<String?, Error>>(.success(nil))
        let provider = self.provider
        Task {
            do { box.value = .success(try await provider()) } catch { box.value = .failure(error) }
            done.signal()
        }
        done.wait()
        return try box.value.get()
    }
}

/// A Supabase Realtime client: one WebSocket, many channels. Creating it does not connect;
/// subscribing a channel (or `connect()`) does. Releasing it (or `shutdown()`) ends it.
///
/// ```swift
/// let client = try RealtimeClient(url: "https://abc.supabase.co/realtime/v1", apiKey: anonKey)
/// let channel = client.channel("room1") { $0.broadcast.receiveOwnBroadcasts = true }
/// let messages = channel.broadcastStream(event: "message")
/// try await channel.subscribe()
/// try await channel.broadcast(event: "message", message: ["text": "hi"])
/// for await message in messages { print(try message.decode(as: [String: String].self)) }
/// ```
public final class RealtimeClient: @unchecked Sendable {
    let ffi: FfiClient
    let decoder: JSONDecoder
    let encoder: JSONEncoder
    private let lock = NSLock()
    private var registry: [String: RealtimeChannel] = [:]

    /// - Parameters:
    ///   - url: `http(s)://<host>/realtime/v1` or a full `ws(s)://.../websocket` URL.
    ///   - apiKey: the project's API key (sent as `apikey`).
    public init(url: String, apiKey: String, options: RealtimeClientOptions = RealtimeClientOptions()) throws {
        decoder = options.decoder
        encoder = options.encoder
        let provider = options.accessTokenProvider.map { TokenAdapter($0) }
        let ffiOptions = try options.ffiOptions(url: url, apiKey: apiKey)
        ffi = try ffiCall { try FfiClient(options: ffiOptions, tokenProvider: provider) }
    }

    deinit {
        ffi.shutdown()
    }

    /// The channel for topic `realtime:<name>`; while a channel of that name is live it is
    /// returned as is (and `configure` is ignored), as in supabase-swift.
    public func channel(_ name: String, configure: (inout RealtimeChannelConfig) -> Void = { _ in }) throws -> RealtimeChannel {
        lock.lock()
        defer { lock.unlock() }
        if let existing = registry[name], !existing.isFinished { return existing }
        var config = RealtimeChannelConfig()
        configure(&config)
        let ffiChannel = try ffiCall { try ffi.channel(name: name, options: config.ffiOptions()) }
        let channel = try RealtimeChannel(ffi: ffiChannel, decoder: decoder, encoder: encoder)
        registry[name] = channel
        return channel
    }

    /// The live channels (subscribed or not yet, and not ended) by name, as supabase-swift's
    /// `channels`: the library's own list (realtime-js' `getChannels()`), so a channel ended
    /// by the server or removed is not in it. Empty once the client is shut down.
    public var channels: [String: RealtimeChannel] {
        let live = Set(((try? ffi.channels()) ?? []).map { $0.topic() })
        lock.lock()
        defer { lock.unlock() }
        return registry.filter { !$0.value.isFinished && live.contains($0.value.topic) }
    }

    /// Leaves `channel` and forgets it, as realtime-js' `removeChannel`: its streams see the
    /// final status and finish. Returns once the server confirmed (or the push timed out).
    public func removeChannel(_ channel: RealtimeChannel) async throws {
        try await ffiCall { try await ffi.removeChannel(channel: channel.ffi) }
        lock.lock()
        registry = registry.filter { $0.value !== channel }
        lock.unlock()
    }

    /// Removes every channel (see `removeChannel`).
    public func removeAllChannels() async throws {
        try await ffiCall { try await ffi.removeAllChannels() }
        lock.lock()
        registry = registry.filter { !$0.value.isFinished }
        lock.unlock()
    }

    /// Starts connecting (and keeps reconnecting until `disconnect()`).
    public func connect() throws { try ffiCall { try ffi.connect() } }

    /// Connects if needed and returns once the socket is open.
    public func connected() async throws { try await ffiCall { try await ffi.connected() } }

    /// Closes the socket and stops reconnecting; channels rejoin on the next `connect()`.
    public func disconnect() throws { try ffiCall { try ffi.disconnect() } }

    /// Ends the client for good; later calls fail with `RealtimeError.shutdown`. Every
    /// channel's streams finish after its final status (`client shut down`), and
    /// `statusChange` after `.shutDown`; an iteration across it ends normally. Idempotent.
    public func shutdown() { ffi.shutdown() }

    /// The same as `shutdown()` (as `close()` in the Kotlin binding). Idempotent.
    public func close() { shutdown() }

    /// Sets the user JWT, pushed to every joined channel; `nil` falls back to the API key.
    public func setAuth(_ token: String?) throws { try ffiCall { try ffi.setAuth(token: token) } }

    public var status: RealtimeClientStatus { RealtimeClientStatus(ffi.connectionState()) }

    /// The socket's state changes from now on (a client-wide listener while iterated); the
    /// stream finishes after `.shutDown` (at once when the client is already shut down).
    public var statusChange: AsyncStream<RealtimeClientStatus> {
        let (stream, continuation) = AsyncStream.makeStream(of: RealtimeClientStatus.self)
        let listener = ClientStatusListener { status in
            continuation.yield(status)
            if status == .shutDown { continuation.finish() }
        }
        guard let id = try? ffi.onEvent(listener: listener) else {
            continuation.finish() // shut down: nothing more will come
            return stream
        }
        continuation.onTermination = { [weak self] _ in self?.ffi.removeListener(id: id) }
        return stream
    }

    /// A snapshot of the client's counters.
    public func metrics() -> RealtimeMetrics { RealtimeMetrics(ffi.metrics()) }

    /// The network changed (e.g. from NWPathMonitor): check the link now.
    public func networkChanged() throws { try ffiCall { try ffi.networkChanged() } }

    public func appBackgrounded() throws { try ffiCall { try ffi.appBackgrounded() } }
    public func appForegrounded() throws { try ffiCall { try ffi.appForegrounded() } }
}

private final class ClientStatusListener: EventListener, @unchecked Sendable {
    let deliver: (RealtimeClientStatus) -> Void

    init(_ deliver: @escaping (RealtimeClientStatus) -> Void) {
        self.deliver = deliver
    }

    func onEvent(event: RealtimeEvent) throws {
        if case let .connectionStatus(state, _) = event { deliver(RealtimeClientStatus(state)) }
    }
}

/// A mutable value shared between threads under the caller's synchronisation.
final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}
