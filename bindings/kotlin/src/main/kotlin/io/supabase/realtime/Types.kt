package io.supabase.realtime

import kotlin.time.Duration
import kotlin.time.Duration.Companion.microseconds
import io.supabase.realtime.ffi.ConnectionState as FfiConnectionState
import io.supabase.realtime.ffi.ErrorKind as FfiErrorKind
import io.supabase.realtime.ffi.HeartbeatStatus as FfiHeartbeatStatus
import io.supabase.realtime.ffi.IoCause as FfiIoCause
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
 * Everything a call can fail with, one type per cause; every message names the cause and
 * carries the text the server or the system gave. Catch the sealed groups ([ChannelError],
 * [Http], [Io]) or the precise type:
 *
 * ```
 * try {
 *     channel.subscribe()
 * } catch (e: RealtimeException.Http.AuthRejected) {      // wrong or expired API key / token
 *     println("the server refused the key: ${e.body}")
 * } catch (e: RealtimeException.Io.ConnectionRefused) {   // the server is not running
 *     println(e.message)
 * } catch (e: RealtimeException.ChannelError) {           // refused with the server's reason
 *     println(e.reason)
 * }
 * ```
 */
sealed class RealtimeException(message: String) : Exception(message) {
    /** A caller-supplied value is unusable (bad URL, malformed JSON, binding after subscribe, ...). */
    class InvalidArgument(val reason: String) : RealtimeException("invalid argument: $reason")

    /** The call needs a connected socket or a joined channel. */
    class NotConnected : RealtimeException("not connected: the call needs a connected socket or a joined channel")

    /**
     * No reply in time (a join with no other cause to report: the client keeps trying
     * underneath, and the channel joins once it can).
     */
    class Timeout(message: String = "timed out: no reply from the server in time") : RealtimeException(message)

    /**
     * The server refused a join or a push; [reason] is its text unchanged (for example
     * `InvalidJWTToken: Token has expired 120 seconds ago`), [recoverable] says whether the
     * client keeps retrying by itself.
     */
    sealed class ChannelError(val reason: String, val recoverable: Boolean) : RealtimeException("channel error: $reason") {
        /** Upstream's error code, the text before the first `:` (`ChannelRateLimitReached`, `Unauthorized`, ...). */
        val code: String get() = reason.substringBefore(':').trim()

        /** Too many channels on this connection (`ChannelRateLimitReached`; recoverable). */
        class RateLimitReached(reason: String, recoverable: Boolean) : ChannelError(reason, recoverable)

        /** A private channel the token may not join (`Unauthorized`, `PrivateOnly`). */
        class Unauthorized(reason: String, recoverable: Boolean) : ChannelError(reason, recoverable)

        /** Any other refusal. */
        class Refused(reason: String, recoverable: Boolean) : ChannelError(reason, recoverable)
    }

    /** A blocking call was made on the library's dispatch thread. */
    class WouldDeadlock : RealtimeException("blocking call on the dispatch thread would deadlock")

    /** The client was shut down ([RealtimeClient.close]): every later call fails with this. */
    class Shutdown(message: String = "client shut down") : RealtimeException(message)

    /** An HTTP request (the WebSocket upgrade, or [RealtimeChannel.httpSend]) got [status] with [body], the server's reason. */
    sealed class Http(val status: Int, val body: String, message: String) : RealtimeException(message) {
        /** 401 or 403: the server refused the API key or the access token (wrong, expired). */
        class AuthRejected(status: Int, body: String) :
            Http(status, body, "HTTP $status: the server refused the API key or token: $body")

        /** 404: nothing answers at this URL's path (it should end in `/realtime/v1`). */
        class NotFound(body: String) : Http(404, body, "HTTP 404: $body")

        /** Any other status. */
        class Status(status: Int, body: String) : Http(status, body, "HTTP $status: $body")
    }

    /** A TLS configuration or handshake problem. */
    class Tls(val reason: String) : RealtimeException("TLS error: $reason")

    /** A transport problem; [reason] is the system's text with the address. */
    sealed class Io(val reason: String, message: String) : RealtimeException(message) {
        /** The server's name did not resolve (DNS, /etc/hosts). */
        class HostNotFound(reason: String) : Io(reason, "host not found: $reason")

        /** Nothing listens at the address: is the server running? */
        class ConnectionRefused(reason: String) : Io(reason, "connection refused: $reason")

        /** Anything else (unreachable, reset, a connect timeout, a protocol error). */
        class Other(reason: String) : Io(reason, "I/O error: $reason")
    }

    /** A callback (token provider) threw. */
    class Callback(val reason: String) : RealtimeException("callback failed: $reason")
}

internal fun FfiException.toPublic(): RealtimeException = when (this) {
    is FfiException.InvalidArgument -> RealtimeException.InvalidArgument(reason)
    is FfiException.NotConnected -> RealtimeException.NotConnected()
    is FfiException.Timeout -> RealtimeException.Timeout()
    is FfiException.ChannelException -> channelError(reason, recoverable)
    is FfiException.WouldDeadlock -> RealtimeException.WouldDeadlock()
    is FfiException.Shutdown -> RealtimeException.Shutdown()
    is FfiException.Http -> when (val code = status.toInt()) {
        401, 403 -> RealtimeException.Http.AuthRejected(code, body)
        404 -> RealtimeException.Http.NotFound(body)
        else -> RealtimeException.Http.Status(code, body)
    }
    is FfiException.Tls -> RealtimeException.Tls(reason)
    is FfiException.Io -> when (kind) {
        FfiIoCause.HOST_NOT_FOUND -> RealtimeException.Io.HostNotFound(reason)
        FfiIoCause.CONNECTION_REFUSED -> RealtimeException.Io.ConnectionRefused(reason)
        FfiIoCause.OTHER -> RealtimeException.Io.Other(reason)
    }
    is FfiException.Callback -> RealtimeException.Callback(reason)
}.also { it.initCause(this) }

/** A server refusal as its typed exception, by upstream's error code. */
internal fun channelError(reason: String, recoverable: Boolean): RealtimeException.ChannelError =
    when (reason.substringBefore(':').trim()) {
        "ChannelRateLimitReached" -> RealtimeException.ChannelError.RateLimitReached(reason, recoverable)
        "Unauthorized", "PrivateOnly" -> RealtimeException.ChannelError.Unauthorized(reason, recoverable)
        else -> RealtimeException.ChannelError.Refused(reason, recoverable)
    }

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
