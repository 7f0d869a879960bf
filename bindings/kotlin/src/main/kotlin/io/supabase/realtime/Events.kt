package io.supabase.realtime

import kotlinx.serialization.json.Json
import kotlinx.serialization.json.JsonArray
import kotlinx.serialization.json.JsonElement
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.boolean
import kotlinx.serialization.json.booleanOrNull
import kotlinx.serialization.json.contentOrNull
import kotlinx.serialization.json.decodeFromJsonElement
import kotlinx.serialization.json.doubleOrNull
import kotlinx.serialization.json.int
import kotlinx.serialization.json.jsonArray
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.jsonPrimitive
import kotlinx.serialization.json.long
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds

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

    /**
     * The channel joined again after [gap] away: events may have been missed. With
     * `autoReplay`, it follows the replayed messages and [filled] says every broadcast stored
     * during the gap was delivered.
     */
    data class Resumed(override val topic: String, val gap: Duration, val filled: Boolean = false) : RealtimeEvent

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
    /** The JSON payload; null for a binary broadcast. */
    val payload: JsonElement?,
    val binary: ByteArray?,
    /** `meta` (e.g. `{"id": ...}` for database-originated messages), when present. */
    val meta: JsonObject?,
    @PublishedApi internal val serializer: Json,
) : RealtimeEvent {
    /** The payload's JSON text; null for a binary broadcast. */
    val json: String? by lazy { payload?.toString() }

    /** The stored message's id (`meta.id`), for persisted messages. */
    val id: String? get() = (meta?.get("id") as? JsonPrimitive)?.takeIf { it.isString }?.content

    /** Delivered by a replay on join (`meta.replayed`), not live. */
    val replayed: Boolean get() = (meta?.get("replayed") as? JsonPrimitive)?.booleanOrNull == true

    /** The JSON payload decoded as [T] with the client's serializer; throws for a binary one. */
    inline fun <reified T> decodeAs(): T = serializer.decodeFromJsonElement(
        payload ?: throw IllegalStateException("binary broadcast '$event' has no JSON payload"),
    )

    override fun toString() =
        "BroadcastMessage(topic=$topic, event=$event, " + (payload?.let { "payload=$it" } ?: "binary=${binary?.size} bytes") + ")"
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
sealed class PostgresAction private constructor(
    override val topic: String,
    /** The change's `data` object of a delivered batch (see src/uniffi/batch.rs). */
    private val data: JsonObject,
    val serializer: Json,
) : RealtimeEvent {
    val schema: String get() = data.string("schema")
    val table: String get() = data.string("table")

    /** ISO 8601 commit time, as the server sends it. */
    val commitTimestamp: String get() = data.string("commit_timestamp")
    val columns: List<Column> by lazy {
        (data["columns"] as? JsonArray ?: JsonArray(emptyList())).map {
            val o = it.jsonObject
            Column(o.string("name"), o.string("type"))
        }
    }

    /** Errors the server reported for this change (e.g. `Error 413: Payload Too Large`), if any. */
    val errors: List<String> by lazy {
        (data["errors"] as? JsonArray)?.mapNotNull { it.jsonPrimitive.contentOrNull } ?: emptyList()
    }
    protected val newRow: JsonObject get() = data["record"] as? JsonObject ?: JsonObject(emptyMap())
    protected val oldRow: JsonObject get() = data["old_record"] as? JsonObject ?: JsonObject(emptyMap())

    class Insert internal constructor(t: String, d: JsonObject, s: Json) : PostgresAction(t, d, s), HasRecord {
        override val record get() = newRow
        override fun toString() = "Insert($schema.$table, record=$record)"
    }

    class Update internal constructor(t: String, d: JsonObject, s: Json) : PostgresAction(t, d, s), HasRecord, HasOldRecord {
        override val record get() = newRow
        override val oldRecord get() = oldRow
        override fun toString() = "Update($schema.$table, record=$record, oldRecord=$oldRecord)"
    }

    class Delete internal constructor(t: String, d: JsonObject, s: Json) : PostgresAction(t, d, s), HasOldRecord {
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

internal fun presences(metas: JsonElement?): List<Presence> = (metas as? JsonArray ?: JsonArray(emptyList())).map {
    val meta = it.jsonObject
    Presence(meta["presence_ref"]?.jsonPrimitive?.content ?: "", JsonObject(meta - "presence_ref"))
}

private fun JsonObject.string(key: String): String = this[key]?.jsonPrimitive?.contentOrNull ?: ""

private fun JsonObject.stringOrNull(key: String): String? = this[key]?.jsonPrimitive?.contentOrNull

/**
 * Receives the library's batches (one JNA upcall per batch, not per event) and hands each on
 * as a [Batch], undecoded: the library's dispatch thread only moves text, and the decoding
 * happens where the batch is first read, normally in a collecting coroutine. A failure is
 * logged with [what] and does not stop delivery.
 */
internal class BatchListener(
    private val json: Json,
    private val what: String,
    private val onBatch: (Batch) -> Unit,
) : io.supabase.realtime.ffi.EventBatchListener {
    override fun onEvents(eventsJson: String, binaries: List<ByteArray>) {
        delivering.set(true)
        try {
            onBatch(Batch(eventsJson, binaries, json, what))
        } catch (e: Throwable) {
            log.log(java.util.logging.Level.WARNING, what, e)
        } finally {
            delivering.set(false)
        }
    }

    companion object {
        private val delivering = ThreadLocal.withInitial { false }

        /**
         * Whether this thread is delivering a batch (an unconfined collector may resume inside
         * it): waiting there for the library's next events would wait on itself.
         */
        fun onDispatchThread(): Boolean = delivering.get()
    }
}

/** Events handed to the flows: one delivered batch, or a decoded part of one. */
internal interface Delivered {
    /** The events, each with its raw JSON (whose `ids` say which postgres bindings matched). */
    val events: List<Pair<JsonObject, RealtimeEvent>>

    /** False when no event with [tag] ([Batch.typeTag]; null: any event) can be in it. */
    fun mayHold(tag: String?): Boolean
}

/** A decoded part of a batch (cut at a status change, which is handled on the dispatch thread). */
internal class Decoded(override val events: List<Pair<JsonObject, RealtimeEvent>>) : Delivered {
    override fun mayHold(tag: String?) = events.isNotEmpty()
}

/**
 * One delivered batch (a JSON array, format in src/uniffi/batch.rs), decoded once, by the
 * first thread that reads [events]; collectors of several flows share the result. A batch that
 * does not decode is logged with [what] and holds no events.
 */
internal class Batch(
    private val text: String,
    private val binaries: List<ByteArray>,
    private val json: Json,
    private val what: String,
) : Delivered {
    override val events: List<Pair<JsonObject, RealtimeEvent>> by lazy {
        try {
            decodeBatch(text, binaries, json)
        } catch (e: Exception) {
            log.log(java.util.logging.Level.WARNING, what, e)
            emptyList()
        }
    }

    /**
     * Whether the text contains [s]: a cheap test before decoding. It may say yes for a
     * payload that merely contains the text, never no for an event that is there.
     */
    fun mentions(s: String): Boolean = text.contains(s)

    override fun mayHold(tag: String?) = tag == null || mentions(tag)

    companion object {
        /** How an event of JSON `type` [type] starts in a batch (serde writes the tag first, compact). */
        fun typeTag(type: String) = "{\"type\":\"$type\""
    }
}

/**
 * The events of one delivered batch, with binary broadcast payloads taken from [binaries].
 * Each element also comes back as raw JSON (its `ids` say which postgres bindings matched).
 */
internal fun decodeBatch(eventsJson: String, binaries: List<ByteArray>, json: Json): List<Pair<JsonObject, RealtimeEvent>> =
    Json.parseToJsonElement(eventsJson).jsonArray.map {
        val o = it.jsonObject
        o to o.toPublic(binaries, json)
    }

private fun JsonObject.toPublic(binaries: List<ByteArray>, json: Json): RealtimeEvent {
    val topic = string("topic")
    return when (string("type")) {
        "broadcast" -> BroadcastMessage(
            topic,
            string("event"),
            this["payload"],
            this["binary"]?.jsonPrimitive?.int?.let(binaries::get),
            this["meta"] as? JsonObject,
            json,
        )
        "postgres_changes" -> {
            val data = getValue("data").jsonObject
            when (data.string("type")) {
                "INSERT" -> PostgresAction.Insert(topic, data, json)
                "UPDATE" -> PostgresAction.Update(topic, data, json)
                else -> PostgresAction.Delete(topic, data, json)
            }
        }
        "presence" -> when (string("event")) {
            "join" -> RealtimeEvent.PresenceChange(
                topic,
                PresenceAction(mapOf(string("key") to presences(this["new_presences"])), emptyMap(), json),
            )
            "leave" -> RealtimeEvent.PresenceChange(
                topic,
                PresenceAction(emptyMap(), mapOf(string("key") to presences(this["left_presences"])), json),
            )
            else -> RealtimeEvent.PresenceSync(topic)
        }
        "status" -> RealtimeEvent.SubscribeStatusChange(
            topic,
            SubscribeStatus.valueOf(string("status")),
            stringOrNull("reason"),
            stringOrNull("error_kind")?.let(ErrorKind::valueOf),
            this["token_rejected"]?.jsonPrimitive?.booleanOrNull ?: false,
        )
        "connection" -> RealtimeEvent.ConnectionChange(ConnectionState.valueOf(string("state")), stringOrNull("reason"))
        "heartbeat" -> RealtimeEvent.Heartbeat(
            HeartbeatStatus.valueOf(string("status")),
            this["rtt_ms"]?.jsonPrimitive?.doubleOrNull?.let(::msDuration),
        )
        "system" -> RealtimeEvent.System(topic, this["payload"] as? JsonObject ?: JsonObject(emptyMap()))
        "resumed" -> RealtimeEvent.Resumed(
            topic,
            getValue("gap_ms").jsonPrimitive.long.milliseconds,
            this["filled"]?.jsonPrimitive?.boolean ?: false,
        )
        "lagged" -> RealtimeEvent.Lagged(getValue("dropped").jsonPrimitive.long)
        else -> RealtimeEvent.ClientError(string("message"))
    }
}
