package io.supabase.realtime

import io.supabase.realtime.ffi.ConnectionState
import io.supabase.realtime.ffi.ErrorKind
import io.supabase.realtime.ffi.HeartbeatStatus
import io.supabase.realtime.ffi.SubscribeStatus
import kotlinx.serialization.json.Json
import kotlinx.serialization.json.JsonArray
import kotlinx.serialization.json.JsonElement
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.jsonArray
import kotlinx.serialization.json.jsonObject
import io.supabase.realtime.ffi.BroadcastMessage as FfiBroadcast
import io.supabase.realtime.ffi.Payload as FfiPayload
import io.supabase.realtime.ffi.PostgresChangePayload as FfiChange
import io.supabase.realtime.ffi.PresenceEvent as FfiPresence
import io.supabase.realtime.ffi.RealtimeEvent as FfiEvent

/** Everything a client reports, with JSON as kotlinx.serialization values. */
sealed interface RealtimeEvent {
    /** The channel topic (`realtime:<name>`), for channel events. */
    val topic: String? get() = null

    data class ConnectionStatus(val state: ConnectionState, val reason: String?) : RealtimeEvent
    data class Heartbeat(val status: HeartbeatStatus, val rttMs: Double?) : RealtimeEvent

    /**
     * A subscribe status; `reason` is the server's text unchanged. `tokenRejected`: the access
     * token was refused for good (set a new one and subscribe a new channel).
     */
    data class ChannelStatus(
        override val topic: String,
        val status: SubscribeStatus,
        val reason: String?,
        val errorKind: ErrorKind?,
        val tokenRejected: Boolean,
    ) : RealtimeEvent

    /** A broadcast: `payload` is the JSON, or null for a binary broadcast (then `binary`). */
    class Broadcast(
        override val topic: String,
        val event: String,
        val payload: JsonElement?,
        val binary: ByteArray?,
        val meta: JsonObject?,
    ) : RealtimeEvent {
        override fun toString() = "Broadcast(topic=$topic, event=$event, payload=$payload, binary=${binary?.size} bytes)"
    }

    sealed interface Presence : RealtimeEvent
    data class PresenceSync(override val topic: String) : Presence
    data class PresenceJoin(
        override val topic: String,
        val key: String,
        val current: List<JsonObject>,
        val new: List<JsonObject>,
    ) : Presence
    data class PresenceLeave(
        override val topic: String,
        val key: String,
        val current: List<JsonObject>,
        val left: List<JsonObject>,
    ) : Presence

    /** A database change, shaped as realtime-js delivers it. */
    data class PostgresChange(
        override val topic: String,
        val schema: String,
        val table: String,
        val commitTimestamp: String,
        val eventType: String,
        val new: JsonObject,
        val old: JsonObject,
        val errors: JsonElement,
        val columns: JsonArray,
        val bindings: List<Int>,
    ) : RealtimeEvent

    data class System(override val topic: String, val payload: JsonObject) : RealtimeEvent
    data class Resumed(override val topic: String, val gapMs: Long) : RealtimeEvent
    data class Lagged(val dropped: Long) : RealtimeEvent
    data class ClientError(val message: String) : RealtimeEvent
}

internal fun parse(json: String): JsonElement = Json.parseToJsonElement(json)

private fun objects(json: String): List<JsonObject> = parse(json).jsonArray.map { it.jsonObject }

internal fun FfiBroadcast.toEvent() = when (val p = payload) {
    is FfiPayload.Json -> RealtimeEvent.Broadcast(topic, event, parse(p.json), null, metaJson?.let { parse(it).jsonObject })
    is FfiPayload.Binary -> RealtimeEvent.Broadcast(topic, event, null, p.data, metaJson?.let { parse(it).jsonObject })
}

internal fun FfiPresence.toEvent(): RealtimeEvent.Presence = when (this) {
    is FfiPresence.Sync -> RealtimeEvent.PresenceSync(topic)
    is FfiPresence.Join -> RealtimeEvent.PresenceJoin(topic, key, objects(currentJson), objects(newJson))
    is FfiPresence.Leave -> RealtimeEvent.PresenceLeave(topic, key, objects(currentJson), objects(leftJson))
}

internal fun FfiChange.toEvent() = RealtimeEvent.PostgresChange(
    topic, schema, table, commitTimestamp, eventType,
    parse(newJson).jsonObject, parse(oldJson).jsonObject, parse(errorsJson), parse(columnsJson).jsonArray,
    bindings.map { it.toInt() },
)

internal fun FfiEvent.toEvent(): RealtimeEvent = when (this) {
    is FfiEvent.ConnectionStatus -> RealtimeEvent.ConnectionStatus(state, reason)
    is FfiEvent.Heartbeat -> RealtimeEvent.Heartbeat(status, rttMs)
    is FfiEvent.ChannelStatus -> RealtimeEvent.ChannelStatus(topic, status, reason, errorKind, tokenRejected)
    is FfiEvent.Broadcast -> message.toEvent()
    is FfiEvent.Presence -> event.toEvent()
    is FfiEvent.PostgresChange -> change.toEvent()
    is FfiEvent.System -> RealtimeEvent.System(topic, parse(payloadJson).jsonObject)
    is FfiEvent.Resumed -> RealtimeEvent.Resumed(topic, gapMs.toLong())
    is FfiEvent.Lagged -> RealtimeEvent.Lagged(dropped.toLong())
    is FfiEvent.ClientError -> RealtimeEvent.ClientError(message)
}
