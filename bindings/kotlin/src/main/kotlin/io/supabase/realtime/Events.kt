package io.supabase.realtime

import kotlinx.serialization.json.Json
import kotlinx.serialization.json.JsonElement
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.contentOrNull
import kotlinx.serialization.json.decodeFromJsonElement
import kotlinx.serialization.json.jsonArray
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.jsonPrimitive
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import io.supabase.realtime.ffi.BroadcastMessage as FfiBroadcast
import io.supabase.realtime.ffi.Payload as FfiPayload
import io.supabase.realtime.ffi.PostgresChangePayload as FfiChange
import io.supabase.realtime.ffi.PresenceEvent as FfiPresence
import io.supabase.realtime.ffi.RealtimeEvent as FfiEvent

/**
 * Everything a client reports ([RealtimeClient.events], [RealtimeChannel.events]), in order.
 * Broadcasts and database changes are [BroadcastMessage] and [PostgresAction].
 */
sealed interface RealtimeEvent {
    /** The channel topic (`realtime:<name>`), for channel events. */
    val topic: String? get() = null

    data class ConnectionChange(val state: ConnectionState, val reason: String?) : RealtimeEvent
    data class Heartbeat(val status: HeartbeatStatus, val rtt: Duration?) : RealtimeEvent

    /**
     * A subscribe status; `reason` is the server's text unchanged. `tokenRejected`: the access
     * token was refused for good (set a new one and subscribe a new channel).
     */
    data class SubscribeStatusChange(
        override val topic: String,
        val status: SubscribeStatus,
        val reason: String?,
        val errorKind: ErrorKind?,
        val tokenRejected: Boolean,
    ) : RealtimeEvent

    /** The presence state changed; read it with [RealtimeChannel.presenceState]. */
    data class PresenceSync(override val topic: String) : RealtimeEvent

    /** Presences joined ([PresenceAction.leaves] is empty) or left ([PresenceAction.joins] is empty). */
    data class PresenceChange(override val topic: String, val action: PresenceAction) : RealtimeEvent
    data class System(override val topic: String, val payload: JsonObject) : RealtimeEvent

    /** The channel joined again after [gap] away: events may have been missed. */
    data class Resumed(override val topic: String, val gap: Duration) : RealtimeEvent

    /** The library's queue was full: this many data events were dropped. */
    data class Lagged(val dropped: Long) : RealtimeEvent

    /** A problem not tied to a request (malformed frame, token provider failure, ...). */
    data class ClientError(val message: String) : RealtimeEvent
}

/**
 * A received broadcast: JSON ([payload], decoded lazily; [decodeAs]) or bytes ([binary], a
 * binary broadcast of protocol 2.0.0).
 */
class BroadcastMessage internal constructor(
    override val topic: String,
    val event: String,
    /** The payload's JSON text; null for a binary broadcast. */
    val json: String?,
    val binary: ByteArray?,
    private val metaJson: String?,
    @PublishedApi internal val serializer: Json,
) : RealtimeEvent {
    val payload: JsonElement? by lazy { json?.let(Json::parseToJsonElement) }

    /** `meta` (e.g. `{"id": ...}` for database-originated messages), when present. */
    val meta: JsonObject? by lazy { metaJson?.let { Json.parseToJsonElement(it).jsonObject } }

    /** The JSON payload decoded as [T] with the client's serializer; throws for a binary one. */
    inline fun <reified T> decodeAs(): T =
        serializer.decodeFromString(json ?: throw IllegalStateException("binary broadcast '$event' has no JSON payload"))

    override fun toString() =
        "BroadcastMessage(topic=$topic, event=$event, " + (json?.let { "payload=$it" } ?: "binary=${binary?.size} bytes") + ")"
}

/** A column of a changed row. */
data class Column(val name: String, val type: String)

/** A change that carries the new row (INSERT, UPDATE). */
interface HasRecord {
    val record: JsonObject
    val serializer: Json
}

/** A change that carries the old row's replica-identity columns (UPDATE, DELETE). */
interface HasOldRecord {
    val oldRecord: JsonObject
    val serializer: Json
}

inline fun <reified T> HasRecord.decodeRecord(): T = serializer.decodeFromJsonElement(record)
inline fun <reified T> HasOldRecord.decodeOldRecord(): T = serializer.decodeFromJsonElement(oldRecord)
inline fun <reified T> HasRecord.decodeRecordOrNull(): T? = runCatching { decodeRecord<T>() }.getOrNull()
inline fun <reified T> HasOldRecord.decodeOldRecordOrNull(): T? = runCatching { decodeOldRecord<T>() }.getOrNull()

/**
 * A database change, as supabase-kt shapes it: [Insert], [Update] or [Delete]; use the sealed
 * type itself in [RealtimeChannel.postgresChangeFlow] for all three. Values are converted by
 * column type, as realtime-js does.
 */
sealed class PostgresAction private constructor(private val change: FfiChange, val serializer: Json) : RealtimeEvent {
    override val topic: String get() = change.topic
    val schema: String get() = change.schema
    val table: String get() = change.table

    /** ISO 8601 commit time, as the server sends it. */
    val commitTimestamp: String get() = change.commitTimestamp
    val columns: List<Column> by lazy {
        Json.parseToJsonElement(change.columnsJson).jsonArray.map {
            val o = it.jsonObject
            Column(o["name"]!!.jsonPrimitive.content, o["type"]!!.jsonPrimitive.content)
        }
    }

    /** Errors the server reported for this change (e.g. `Error 413: Payload Too Large`), if any. */
    val errors: List<String> by lazy {
        (Json.parseToJsonElement(change.errorsJson) as? kotlinx.serialization.json.JsonArray)
            ?.mapNotNull { it.jsonPrimitive.contentOrNull } ?: emptyList()
    }
    protected val newRow: JsonObject by lazy { Json.parseToJsonElement(change.newJson).jsonObject }
    protected val oldRow: JsonObject by lazy { Json.parseToJsonElement(change.oldJson).jsonObject }

    class Insert internal constructor(c: FfiChange, s: Json) : PostgresAction(c, s), HasRecord {
        override val record get() = newRow
        override fun toString() = "Insert($schema.$table, record=$record)"
    }

    class Update internal constructor(c: FfiChange, s: Json) : PostgresAction(c, s), HasRecord, HasOldRecord {
        override val record get() = newRow
        override val oldRecord get() = oldRow
        override fun toString() = "Update($schema.$table, record=$record, oldRecord=$oldRecord)"
    }

    class Delete internal constructor(c: FfiChange, s: Json) : PostgresAction(c, s), HasOldRecord {
        override val oldRecord get() = oldRow
        override fun toString() = "Delete($schema.$table, oldRecord=$oldRecord)"
    }
}

/** One tracked presence: its `presence_ref` and the state its client tracked. */
data class Presence(val presenceRef: String, val state: JsonObject)

/** Presences that joined and left, by key (a key may be tracked by several connections). */
class PresenceAction internal constructor(
    val joins: Map<String, List<Presence>>,
    val leaves: Map<String, List<Presence>>,
    @PublishedApi internal val serializer: Json,
) {
    override fun toString() = "PresenceAction(joins=$joins, leaves=$leaves)"
}

/** The joined states decoded as [T]; states that do not decode are skipped unless [ignoreOtherTypes] is false. */
inline fun <reified T> PresenceAction.decodeJoinsAs(ignoreOtherTypes: Boolean = true): List<T> =
    decodeStates(joins, ignoreOtherTypes)

inline fun <reified T> PresenceAction.decodeLeavesAs(ignoreOtherTypes: Boolean = true): List<T> =
    decodeStates(leaves, ignoreOtherTypes)

@PublishedApi
internal inline fun <reified T> PresenceAction.decodeStates(m: Map<String, List<Presence>>, lenient: Boolean): List<T> =
    m.values.flatten().mapNotNull {
        if (lenient) runCatching { serializer.decodeFromJsonElement<T>(it.state) }.getOrNull()
        else serializer.decodeFromJsonElement<T>(it.state)
    }

internal fun presences(json: String): List<Presence> = Json.parseToJsonElement(json).jsonArray.map {
    val meta = it.jsonObject
    Presence(meta["presence_ref"]?.jsonPrimitive?.content ?: "", JsonObject(meta - "presence_ref"))
}

internal fun FfiBroadcast.toPublic(json: Json) = when (val p = payload) {
    is FfiPayload.Json -> BroadcastMessage(topic, event, p.json, null, metaJson, json)
    is FfiPayload.Binary -> BroadcastMessage(topic, event, null, p.data, metaJson, json)
}

internal fun FfiChange.toPublic(json: Json): PostgresAction = when (eventType) {
    "INSERT" -> PostgresAction.Insert(this, json)
    "UPDATE" -> PostgresAction.Update(this, json)
    else -> PostgresAction.Delete(this, json)
}

/** Join/leave as a [RealtimeEvent.PresenceChange]; sync as [RealtimeEvent.PresenceSync]. */
internal fun FfiPresence.toPublic(json: Json): RealtimeEvent = when (this) {
    is FfiPresence.Sync -> RealtimeEvent.PresenceSync(topic)
    is FfiPresence.Join -> RealtimeEvent.PresenceChange(topic, PresenceAction(mapOf(key to presences(newJson)), emptyMap(), json))
    is FfiPresence.Leave -> RealtimeEvent.PresenceChange(topic, PresenceAction(emptyMap(), mapOf(key to presences(leftJson)), json))
}

internal fun FfiEvent.toPublic(json: Json): RealtimeEvent = when (this) {
    is FfiEvent.ConnectionStatus -> RealtimeEvent.ConnectionChange(state.toPublic(), reason)
    is FfiEvent.Heartbeat -> RealtimeEvent.Heartbeat(status.toPublic(), rttMs?.let(::msDuration))
    is FfiEvent.ChannelStatus ->
        RealtimeEvent.SubscribeStatusChange(topic, status.toPublic(), reason, errorKind?.toPublic(), tokenRejected)
    is FfiEvent.Broadcast -> message.toPublic(json)
    is FfiEvent.Presence -> event.toPublic(json)
    is FfiEvent.PostgresChange -> change.toPublic(json)
    is FfiEvent.System -> RealtimeEvent.System(topic, Json.parseToJsonElement(payloadJson).jsonObject)
    is FfiEvent.Resumed -> RealtimeEvent.Resumed(topic, gapMs.toLong().milliseconds)
    is FfiEvent.Lagged -> RealtimeEvent.Lagged(dropped.toLong())
    is FfiEvent.ClientError -> RealtimeEvent.ClientError(message)
}
