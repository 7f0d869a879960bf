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
        self.decoder = decoder
        self.encoder = encoder
    }

    func ffiOptions(url: String, apiKey: String) -> ClientOptions {
        ClientOptions(
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
            queueCapacity: queueCapacity.map { UInt32(clamping: $0) }
        )
    }
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

/// Everything a call can fail with. `channelError.reason` is the server's text unchanged
/// (`InvalidJWTToken: Token has expired 120 seconds ago`); `recoverable` says whether the
/// client keeps retrying by itself.
public enum RealtimeError: Error, Sendable, Equatable {
    case invalidArgument(reason: String)
    case notConnected
    case timeout
    case channelError(reason: String, recoverable: Bool)
    case wouldDeadlock
    case shutdown
    case http(status: Int, body: String)
    case tls(reason: String)
    case io(reason: String)
    case callback(reason: String)

    init(_ e: FfiError) {
        switch e {
        case let .InvalidArgument(reason): self = .invalidArgument(reason: reason)
        case .NotConnected: self = .notConnected
        case .Timeout: self = .timeout
        case let .ChannelError(reason, recoverable): self = .channelError(reason: reason, recoverable: recoverable)
        case .WouldDeadlock: self = .wouldDeadlock
        case .Shutdown: self = .shutdown
        case let .Http(status, body): self = .http(status: Int(status), body: body)
        case let .Tls(reason): self = .tls(reason: reason)
        case let .Io(reason, _): self = .io(reason: reason)
        case let .Callback(reason): self = .callback(reason: reason)
        }
    }
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
        let ffiOptions = options.ffiOptions(url: url, apiKey: apiKey)
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

    /// The live channels, by name.
    public var channels: [String: RealtimeChannel] {
        lock.lock()
        defer { lock.unlock() }
        return registry.filter { !$0.value.isFinished }
    }

    /// Unsubscribes `channel` and forgets it.
    public func removeChannel(_ channel: RealtimeChannel) async {
        lock.lock()
        registry = registry.filter { $0.value !== channel }
        lock.unlock()
        if !channel.isFinished { try? await channel.unsubscribe() }
    }

    /// Unsubscribes every channel.
    public func removeAllChannels() async {
        for channel in channels.values { await removeChannel(channel) }
    }

    /// Starts connecting (and keeps reconnecting until `disconnect()`).
    public func connect() throws { try ffiCall { try ffi.connect() } }

    /// Connects if needed and returns once the socket is open.
    public func connected() async throws { try await ffiCall { try await ffi.connected() } }

    /// Closes the socket and stops reconnecting; channels rejoin on the next `connect()`.
    public func disconnect() throws { try ffiCall { try ffi.disconnect() } }

    /// Ends the client for good; later calls fail with `RealtimeError.shutdown`.
    public func shutdown() { ffi.shutdown() }

    /// Sets the user JWT, pushed to every joined channel; `nil` falls back to the API key.
    public func setAuth(_ token: String?) throws { try ffiCall { try ffi.setAuth(token: token) } }

    public var status: RealtimeClientStatus { RealtimeClientStatus(ffi.connectionState()) }

    /// The socket's state changes from now on (a client-wide listener while iterated).
    public var statusChange: AsyncStream<RealtimeClientStatus> {
        let (stream, continuation) = AsyncStream.makeStream(of: RealtimeClientStatus.self)
        guard let id = try? ffi.onEvent(listener: ClientStatusListener { continuation.yield($0) }) else {
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
