package io.supabase.realtime

import kotlin.time.Duration
import kotlin.time.Duration.Companion.microseconds
import io.supabase.realtime.ffi.ConnectionState as FfiConnectionState
import io.supabase.realtime.ffi.ErrorKind as FfiErrorKind
import io.supabase.realtime.ffi.HeartbeatStatus as FfiHeartbeatStatus
import io.supabase.realtime.ffi.Metrics as FfiMetrics
import io.supabase.realtime.ffi.RealtimeException as FfiException
import io.supabase.realtime.ffi.SubscribeStatus as FfiSubscribeStatus

/** The socket's state ([RealtimeClient.status]). */
enum class ConnectionState { DISCONNECTED, CONNECTING, CONNECTED, SHUT_DOWN }

/**
 * A channel's state ([RealtimeChannel.status]), named as in supabase-kt. A channel that failed
 * with a recoverable error is SUBSCRIBING again (the client rejoins by itself); a terminal error
 * or a leave ends in UNSUBSCRIBED.
 */
enum class ChannelStatus { UNSUBSCRIBED, SUBSCRIBING, SUBSCRIBED, UNSUBSCRIBING }

/** realtime-js' subscribe statuses, as carried by [RealtimeEvent.SubscribeStatusChange]. */
enum class SubscribeStatus { SUBSCRIBED, TIMED_OUT, CLOSED, CHANNEL_ERROR }

enum class HeartbeatStatus { SENT, OK, ERROR, TIMEOUT }

/** Whether an error may clear up by itself (the client retries) or not. */
enum class ErrorKind { RECOVERABLE, TERMINAL }

/** Wire serializer: 2.0.0 (default; binary broadcasts) or 1.0.0 (JSON only). */
enum class ProtocolVersion { V1, V2 }

/**
 * A snapshot of the client's counters ([RealtimeClient.metrics]). `droppedEvents` counts data
 * events the library's bounded queue dropped because listeners fell behind.
 */
data class Metrics(
    val connects: Long,
    val reconnects: Long,
    val messagesIn: Long,
    val messagesOut: Long,
    val heartbeatRtt: Duration?,
    val heartbeatRttP50: Duration?,
    val heartbeatRttP99: Duration?,
    val timeDisconnected: Duration,
    val queueDepth: Long,
    val droppedEvents: Long,
    val laggedEvents: Long,
    /** Per live channel topic: time from its last (re)join attempt to SUBSCRIBED. */
    val joinLatency: Map<String, Duration>,
)

/**
 * Everything a call can fail with. [ChannelError.reason] is the server's text unchanged
 * (`InvalidJWTToken: Token has expired 120 seconds ago`); `recoverable` says whether the client
 * keeps retrying by itself.
 */
sealed class RealtimeException(message: String) : Exception(message) {
    /** A caller-supplied value is unusable (bad URL, malformed JSON, binding after subscribe, ...). */
    class InvalidArgument(val reason: String) : RealtimeException("invalid argument: $reason")
    class NotConnected : RealtimeException("not connected")
    class Timeout : RealtimeException("timed out")
    class ChannelError(val reason: String, val recoverable: Boolean) : RealtimeException("channel error: $reason")
    /** A blocking call was made on the library's dispatch thread. */
    class WouldDeadlock : RealtimeException("blocking call on the dispatch thread would deadlock")
    /** The client was shut down ([RealtimeClient.close]). */
    class Shutdown : RealtimeException("client shut down")
    class Http(val status: Int, val body: String) : RealtimeException("HTTP $status: $body")
    class Tls(val reason: String) : RealtimeException("TLS error: $reason")
    class Io(val reason: String) : RealtimeException("I/O error: $reason")
    /** A callback (token provider) threw. */
    class Callback(val reason: String) : RealtimeException("callback failed: $reason")
}

internal fun FfiException.toPublic(): RealtimeException = when (this) {
    is FfiException.InvalidArgument -> RealtimeException.InvalidArgument(reason)
    is FfiException.NotConnected -> RealtimeException.NotConnected()
    is FfiException.Timeout -> RealtimeException.Timeout()
    is FfiException.ChannelException -> RealtimeException.ChannelError(reason, recoverable)
    is FfiException.WouldDeadlock -> RealtimeException.WouldDeadlock()
    is FfiException.Shutdown -> RealtimeException.Shutdown()
    is FfiException.Http -> RealtimeException.Http(status.toInt(), body)
    is FfiException.Tls -> RealtimeException.Tls(reason)
    is FfiException.Io -> RealtimeException.Io(reason)
    is FfiException.Callback -> RealtimeException.Callback(reason)
}.also { it.initCause(this) }

/** Runs a call into the generated layer, turning its exceptions into [RealtimeException]. */
internal inline fun <T> ffiCall(block: () -> T): T = try {
    block()
} catch (e: FfiException) {
    throw e.toPublic()
}

internal fun msDuration(ms: Double): Duration = (ms * 1000).toLong().microseconds

internal fun FfiConnectionState.toPublic() = when (this) {
    FfiConnectionState.DISCONNECTED -> ConnectionState.DISCONNECTED
    FfiConnectionState.CONNECTING -> ConnectionState.CONNECTING
    FfiConnectionState.CONNECTED -> ConnectionState.CONNECTED
    FfiConnectionState.SHUT_DOWN -> ConnectionState.SHUT_DOWN
}

internal fun FfiSubscribeStatus.toPublic() = when (this) {
    FfiSubscribeStatus.SUBSCRIBED -> SubscribeStatus.SUBSCRIBED
    FfiSubscribeStatus.TIMED_OUT -> SubscribeStatus.TIMED_OUT
    FfiSubscribeStatus.CLOSED -> SubscribeStatus.CLOSED
    FfiSubscribeStatus.CHANNEL_ERROR -> SubscribeStatus.CHANNEL_ERROR
}

internal fun FfiHeartbeatStatus.toPublic() = when (this) {
    FfiHeartbeatStatus.SENT -> HeartbeatStatus.SENT
    FfiHeartbeatStatus.OK -> HeartbeatStatus.OK
    FfiHeartbeatStatus.ERROR -> HeartbeatStatus.ERROR
    FfiHeartbeatStatus.TIMEOUT -> HeartbeatStatus.TIMEOUT
}

internal fun FfiErrorKind.toPublic() = when (this) {
    FfiErrorKind.RECOVERABLE -> ErrorKind.RECOVERABLE
    FfiErrorKind.TERMINAL -> ErrorKind.TERMINAL
}

internal fun FfiMetrics.toPublic() = Metrics(
    connects = connects.toLong(),
    reconnects = reconnects.toLong(),
    messagesIn = messagesIn.toLong(),
    messagesOut = messagesOut.toLong(),
    heartbeatRtt = heartbeatRttMs?.let(::msDuration),
    heartbeatRttP50 = heartbeatRttP50Ms?.let(::msDuration),
    heartbeatRttP99 = heartbeatRttP99Ms?.let(::msDuration),
    timeDisconnected = msDuration(timeDisconnectedMs),
    queueDepth = queueDepth.toLong(),
    droppedEvents = droppedEvents.toLong(),
    laggedEvents = laggedEvents.toLong(),
    joinLatency = joinLatency.associate { it.topic to msDuration(it.latencyMs) },
)
