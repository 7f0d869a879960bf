package io.supabase.realtime

import kotlinx.serialization.json.Json
import kotlin.time.Duration
import kotlin.time.Duration.Companion.seconds
import io.supabase.realtime.ffi.ChannelOptions as FfiChannelOptions
import io.supabase.realtime.ffi.ClientOptions as FfiClientOptions
import io.supabase.realtime.ffi.PostgresChangesFilter as FfiFilter
import io.supabase.realtime.ffi.SerializerVersion as FfiVsn

@DslMarker
annotation class RealtimeDsl

/** The default of [RealtimeConfig.queueCapacity]. */
const val DEFAULT_QUEUE_CAPACITY: Int = 1_000_000

/**
 * Client settings, set in the builder of [RealtimeClient]. A `null` keeps the library default
 * (realtime-js' values: heartbeat 25 s, push timeout 10 s, reconnect 1/2/5/10 s).
 *
 * ```
 * val client = RealtimeClient(url, anonKey) {
 *     heartbeatInterval = 15.seconds
 *     reconnectDelays = listOf(1.seconds, 2.seconds, 5.seconds)
 *     accessTokenProvider = { auth.currentAccessTokenOrNull() }
 * }
 * ```
 */
@RealtimeDsl
class RealtimeConfig internal constructor() {
    /** A user JWT for channel joins; defaults to the API key. */
    var accessToken: String? = null

    /**
     * Supplies a fresh token before each connect, rejoin and ahead of the JWT's expiry. Runs on
     * a library helper thread (inside `runBlocking`), so it may suspend on a refresh request.
     */
    var accessTokenProvider: (suspend () -> String?)? = null

    /** Extra query parameters of the WebSocket URL. */
    val params: MutableMap<String, String> = mutableMapOf()

    /** Extra HTTP headers on the upgrade request and REST calls. */
    val headers: MutableMap<String, String> = mutableMapOf()
    var protocolVersion: ProtocolVersion? = null
    var heartbeatInterval: Duration? = null

    /** How long a join, leave, ack'd broadcast or presence push waits for its reply. */
    var pushTimeout: Duration? = null
    var reconnectDelays: List<Duration>? = null

    /** 0..1: each delay is scaled by a random factor in `[1 - j, 1 + j]`. */
    var reconnectJitter: Double? = null
    var rejoinDelays: List<Duration>? = null

    /** Extra trusted root certificates (PEM). */
    var customCaPem: String? = null

    /** Trust the platform's roots besides the bundled ones. */
    var nativeRoots: Boolean = false

    /**
     * Events the library queues before it drops data events (`Lagged`). Default 1,000,000,
     * a hundred times the core's: supabase-kt loses nothing in a burst (it reads the socket no
     * faster than it delivers), so a burst must fit while the JVM, still compiling the
     * delivery path, drains it more slowly than the network fills it. The queue grows as
     * events wait, so the bound costs memory only when a burst needs it.
     */
    var queueCapacity: Int = DEFAULT_QUEUE_CAPACITY

    /** With a token provider: ask it this long before the JWT's `exp` (default 60 s). */
    var tokenRefreshMargin: Duration? = null

    /** With a token provider: join refusals for the token tolerated before the channel stops. */
    var authRetries: Int? = null

    /**
     * The largest WebSocket message read from the server, in bytes: default 16 MiB, at least
     * 1024. A larger one is reported as a [RealtimeEvent.ClientError] and the connection is
     * dropped and reconnected (a socket cannot skip a message).
     */
    var maxMessageSize: Long? = null

    /**
     * The largest frame decoded into events, in bytes: default 8 MiB, at least 1024. A larger
     * one is skipped and reported as a [RealtimeEvent.ClientError]; the connection stays up.
     */
    var maxPayloadSize: Long? = null

    /**
     * Per channel, the presence keys kept: default 100,000, at least 1. A presence state or
     * diff that would go over is not applied and is reported as a [RealtimeEvent.ClientError].
     */
    var maxPresenceKeys: Long? = null

    /** Per channel, the presence state's size as JSON text, in bytes: default 32 MiB, at least 1024; over it, as for [maxPresenceKeys]. */
    var maxPresenceSize: Long? = null

    /** Decodes typed payloads, records and presence states (`broadcastFlow<T>`, `decodeRecord<T>`). */
    var serializer: Json = Json { ignoreUnknownKeys = true }

    internal fun toFfi(url: String, apiKey: String) = FfiClientOptions(
        url = url,
        apiKey = apiKey,
        accessToken = accessToken,
        params = params.toMap(),
        headers = headers.toMap(),
        vsn = protocolVersion?.let { if (it == ProtocolVersion.V1) FfiVsn.V1 else FfiVsn.V2 },
        heartbeatIntervalMs = heartbeatInterval?.ms(),
        pushTimeoutMs = pushTimeout?.ms(),
        reconnectDelaysMs = reconnectDelays?.map { it.ms() },
        reconnectJitter = reconnectJitter,
        rejoinDelaysMs = rejoinDelays?.map { it.ms() },
        customCaPem = customCaPem,
        nativeRoots = nativeRoots,
        queueCapacity = queueCapacity.also { require(it >= 1) { "queueCapacity must be at least 1" } }.toUInt(),
        tokenRefreshMarginMs = tokenRefreshMargin?.ms(),
        authRetries = authRetries?.toUInt(),
        maxMessageSize = bound("max_message_size", maxMessageSize),
        maxPayloadSize = bound("max_payload_size", maxPayloadSize),
        maxPresenceKeys = bound("max_presence_keys", maxPresenceKeys),
        maxPresenceSize = bound("max_presence_size", maxPresenceSize),
    )
}

/**
 * Channel settings, set in the builder of [RealtimeClient.channel] (supabase-kt's names).
 *
 * ```
 * client.channel("room1") {
 *     isPrivate = true
 *     broadcast { receiveOwnBroadcasts = true; acknowledgeBroadcasts = true }
 *     presence { key = "alice" }
 * }
 * ```
 */
@RealtimeDsl
class ChannelConfig internal constructor() {
    /** A private channel, authorized by RLS on `realtime.messages`. */
    var isPrivate: Boolean = false
    internal val broadcast = BroadcastConfig()
    internal val presence = PresenceConfig()

    /** With postgres bindings, report SUBSCRIBED only once changes flow. */
    var waitForPostgresReady: Boolean = true
    var postgresReadyTimeout: Duration = 20.seconds

    /**
     * Gap fill (private channels only): after a rejoin, replay the broadcasts stored during the
     * outage, drop those already delivered; [RealtimeEvent.Resumed.filled] says whether the
     * whole gap was replayed.
     */
    var autoReplay: Boolean = false

    fun broadcast(block: BroadcastConfig.() -> Unit) = broadcast.block()
    fun presence(block: PresenceConfig.() -> Unit) = presence.block()

    internal fun toFfi() = FfiChannelOptions(
        broadcastSelf = broadcast.receiveOwnBroadcasts,
        broadcastAck = broadcast.acknowledgeBroadcasts,
        presenceKey = presence.key,
        presenceEnabled = presence.enabled,
        private = isPrivate,
        waitForPostgresReady = waitForPostgresReady,
        postgresReadyTimeoutMs = postgresReadyTimeout.ms(),
        replaySinceMs = broadcast.replay?.sinceMs,
        replayLimit = broadcast.replay?.limit?.toUInt(),
        replicationReady = broadcast.replicationReady,
        autoReplay = autoReplay,
    )
}

@RealtimeDsl
class BroadcastConfig internal constructor() {
    /** Receive your own broadcasts. */
    var receiveOwnBroadcasts: Boolean = false

    /** Ask the server to ack broadcasts: [RealtimeChannel.send] then returns on the ack. */
    var acknowledgeBroadcasts: Boolean = false

    /** Replay stored broadcasts on join (private channels only). */
    var replay: ReplayConfig? = null

    /** Ask for the `system` message that says replication is ready ([RealtimeChannel.replicationReady]). */
    var replicationReady: Boolean = false
}

/** Stored broadcasts since [sinceMs] (Unix ms), at most [limit] (the server's cap: 25). */
data class ReplayConfig(val sinceMs: Long, val limit: Int? = null)

@RealtimeDsl
class PresenceConfig internal constructor() {
    /** This client's presence key; empty lets the server pick one. */
    var key: String = ""

    /** Presence on at join ([RealtimeChannel.presenceChangeFlow] before subscribing also turns it on). */
    var enabled: Boolean = false
}

/** Operators of [PostgresChangeFilter.filter]. */
enum class FilterOperator { EQ, NEQ, LT, LTE, GT, GTE, IN }

/**
 * Which changes a [RealtimeChannel.postgresChangeFlow] receives, beyond its event and schema.
 *
 * ```
 * channel.postgresChangeFlow<PostgresAction.Insert>("public") {
 *     table = "messages"
 *     filter("room_id", FilterOperator.EQ, 1)     // or: filter = "room_id=eq.1"
 * }
 * ```
 */
@RealtimeDsl
class PostgresChangeFilter internal constructor(private val event: String, private val schema: String) {
    var table: String? = null

    /** A PostgREST-style filter, e.g. `room_id=eq.1`. */
    var filter: String? = null

    /** Only these columns in records. */
    var select: List<String>? = null

    fun filter(column: String, operator: FilterOperator, value: Any) {
        val v = if (operator == FilterOperator.IN && value is Iterable<*>) value.joinToString(",", "(", ")") else value.toString()
        filter = "$column=${operator.name.lowercase()}.$v"
    }

    internal fun toFfi() = FfiFilter(event = event, schema = schema, table = table, filter = filter, select = select)
}

/** A bound as the library takes it (the library checks its minimum; errors name the option as every language does). */
private fun bound(name: String, value: Long?): ULong? {
    if (value != null && value < 0) {
        throw RealtimeException.InvalidArgument("$name must not be negative (got $value)")
    }
    return value?.toULong()
}

private fun Duration.ms(): ULong = inWholeMilliseconds.coerceAtLeast(0).toULong()
