package io.supabase.realtime

import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.filterIsInstance
import kotlinx.coroutines.flow.mapNotNull
import kotlinx.serialization.DeserializationStrategy
import kotlinx.serialization.json.Json
import kotlinx.serialization.json.JsonElement
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.encodeToJsonElement
import kotlinx.serialization.json.int
import kotlinx.serialization.json.jsonArray
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.jsonPrimitive
import kotlin.time.Duration
import kotlinx.serialization.serializer
import java.util.logging.Logger
import kotlin.reflect.KClass
import io.supabase.realtime.ffi.Payload as FfiPayload
import io.supabase.realtime.ffi.RealtimeChannel as FfiChannel

internal val log: Logger = Logger.getLogger("io.supabase.realtime")

/**
 * One channel (topic `realtime:<name>`), from [RealtimeClient.channel]. Flows are cold: each
 * collection receives what arrives while it is collected, and a flow may be collected any
 * number of times. Start collecting (and create postgres/presence flows) before [subscribe].
 *
 * ```
 * val channel = client.channel("room1") { broadcast { receiveOwnBroadcasts = true } }
 * val messages = channel.broadcastFlow<Message>("message")
 * val inserts = channel.postgresChangeFlow<PostgresAction.Insert>("public") { table = "messages" }
 * scope.launch { messages.collect { println(it.text) } }
 * scope.launch { inserts.collect { println(it.decodeRecord<Message>()) } }
 * channel.subscribe()                       // returns on SUBSCRIBED, throws RealtimeException
 * channel.send("message", Message("hi"))
 * ```
 *
 * A channel is single-use: once it is unsubscribed or failed for good, get a new one.
 */
class RealtimeChannel internal constructor(
    internal val ffi: FfiChannel,
    @PublishedApi internal val serializer: Json,
) {
    /** The wire topic, `realtime:<name>`. */
    val topic: String = ffi.topic()

    private val _status = MutableStateFlow(ChannelStatus.UNSUBSCRIBED)

    /** This channel's state; updated on the library's dispatch thread. */
    val status: StateFlow<ChannelStatus> = _status.asStateFlow()

    private val events = Fanout(null) { batch -> batch.map { it.second } }
    private val broadcasts = Fanout("broadcast") { batch -> batch.mapNotNull { it.second as? BroadcastMessage } }
    private val presence = Fanout("presence") { batch ->
        batch.mapNotNull { (it.second as? RealtimeEvent.PresenceChange)?.action }
    }

    /** One per postgres binding, at the binding's index (the `ids` of a change). */
    private val changes = java.util.concurrent.CopyOnWriteArrayList<Fanout<PostgresAction>>()

    @Volatile
    private var presenceEnabled = false

    /** True once the channel closed for good (the client then hands out a new one for its name). */
    @Volatile
    internal var finished = false
        private set

    /** True once [subscribe] was called: the library then ends the channel with a final CLOSED. */
    @Volatile
    internal var subscribed = false
        private set

    /** Counted down when the flows have ended (after the final CLOSED, or by [closeFlows]). */
    internal val ended = java.util.concurrent.CountDownLatch(1)

    // One listener per channel feeds every flow, so an event crosses from the library once
    // however many flows collect it, and events cross in batches (one call per batch) that
    // reach each flow's collector as one hand-off, to be decoded there.
    init {
        ffiCall { ffi.onEvents(BatchListener(serializer, "$topic: event delivery failed", ::route)) }
    }

    /**
     * Hands one delivered batch to the flows; on the dispatch thread. A batch with a status
     * change is decoded here, since [status] and the flows' end follow it: [status] changes
     * only after the events before it were handed on, and the final CLOSED ends the flows
     * after it was. Any other batch goes on undecoded.
     */
    private fun route(batch: Batch) {
        if (!batch.mentions(STATUS_TAG)) return handOn(batch)
        val all = batch.events
        var from = 0
        for ((i, item) in all.withIndex()) {
            val e = item.second as? RealtimeEvent.SubscribeStatusChange ?: continue
            handOn(Decoded(all.subList(from, i)))
            updateStatus(e)
            from = i
            if (e.status == SubscribeStatus.CLOSED) {
                handOn(Decoded(all.subList(i, i + 1)))
                closeFlows()
                return
            }
        }
        handOn(Decoded(all.subList(from, all.size)))
    }

    private fun handOn(delivered: Delivered) {
        broadcasts.emit(delivered)
        presence.emit(delivered)
        for (c in changes) c.emit(delivered)
        events.emit(delivered)
    }

    /**
     * The channel is done: every flow completes. Called after the channel's final CLOSED
     * status was handed to the flows (every ending path has exactly one), and by the client's
     * `close()` for whatever is left. Idempotent.
     */
    internal fun closeFlows() {
        finished = true
        _status.value = ChannelStatus.UNSUBSCRIBED
        events.close()
        broadcasts.close()
        presence.close()
        changes.forEach { it.close() }
        ended.countDown()
    }

    private fun updateStatus(e: RealtimeEvent.SubscribeStatusChange) {
        val terminal = e.status == SubscribeStatus.CLOSED || e.errorKind == ErrorKind.TERMINAL || e.tokenRejected
        _status.value = when {
            e.status == SubscribeStatus.SUBSCRIBED -> ChannelStatus.SUBSCRIBED
            terminal -> ChannelStatus.UNSUBSCRIBED
            else -> ChannelStatus.SUBSCRIBING // recoverable: the client rejoins by itself
        }
        // A terminal error is followed by the final CLOSED, which ends the flows; from now on
        // the client hands out a new channel for this name.
        if (terminal) finished = true
    }

    /**
     * Joins (connecting the client if needed). With [blockUntilSubscribed] (the default) it
     * returns on SUBSCRIBED and otherwise throws, within the join timeout (`pushTimeout`,
     * 10 s), the [RealtimeException] that names the cause: the server's refusal of the key
     * ([RealtimeException.Http.AuthRejected]) or of the join ([RealtimeException.ChannelError]),
     * [RealtimeException.Io.ConnectionRefused], [RealtimeException.Http.NotFound], ... ;
     * without, it only starts joining and [status] tells the rest.
     */
    suspend fun subscribe(blockUntilSubscribed: Boolean = true) {
        _status.compareAndSet(ChannelStatus.UNSUBSCRIBED, ChannelStatus.SUBSCRIBING)
        subscribed = true
        if (!blockUntilSubscribed) return ffiCall { ffi.subscribeNowait() }
        try {
            ffiCall { ffi.subscribe() }
        } catch (e: RealtimeException.Timeout) {
            throw RealtimeException.Timeout("timed out: $topic not joined within the join timeout (pushTimeout); the client keeps trying")
                .apply { initCause(e.cause) }
        }
        // The SUBSCRIBED event may still be queued; unless something newer already arrived,
        // the state is known now.
        _status.compareAndSet(ChannelStatus.SUBSCRIBING, ChannelStatus.SUBSCRIBED)
    }

    /** Leaves; returns once the server confirmed (or the push timed out). */
    suspend fun unsubscribe() {
        if (_status.value != ChannelStatus.UNSUBSCRIBED) _status.value = ChannelStatus.UNSUBSCRIBING
        ffiCall { ffi.unsubscribe() }
    }

    /** Broadcasts JSON; with `acknowledgeBroadcasts` it returns once the server acknowledged. */
    suspend fun send(event: String, message: JsonElement) =
        ffiCall { ffi.sendBroadcast(event, FfiPayload.Json(message.toString())) }

    /** Broadcasts [message] encoded with the client's serializer. */
    suspend inline fun <reified T> send(event: String, message: T) = send(event, serializer.encodeToJsonElement(message))

    /** Broadcasts bytes (a binary frame, protocol 2.0.0). */
    suspend fun send(event: String, bytes: ByteArray) = ffiCall { ffi.sendBroadcast(event, FfiPayload.Binary(bytes)) }

    /** Broadcasts over REST: works without joining. */
    suspend fun httpSend(event: String, message: JsonElement) =
        ffiCall { ffi.httpSend(event, FfiPayload.Json(message.toString())) }

    /**
     * Broadcasts JSON that the server stores (private channels only) for [ttl] (whole seconds,
     * at least 1; null: the server's retention), so that a join with replay replays it; over
     * REST with [http].
     */
    suspend fun sendPersisted(event: String, message: JsonElement, ttl: Duration? = null, http: Boolean = false) {
        require(ttl == null || ttl.inWholeSeconds >= 1) { "persist ttl must be at least 1 second (got $ttl)" }
        val payload = FfiPayload.Json(message.toString())
        val ttlSeconds = (ttl?.inWholeSeconds ?: 0L).coerceAtMost(UInt.MAX_VALUE.toLong()).toUInt()
        if (http) ffiCall { ffi.httpSendPersist(event, payload, ttlSeconds) }
        else ffiCall { ffi.sendBroadcastPersist(event, payload, ttlSeconds) }
    }

    /** Returns once the server said replication is ready (`broadcast { replicationReady = true }`). */
    suspend fun replicationReady() = ffiCall { ffi.replicationReady() }

    /** Tracks this client's presence with [state] (a JSON object); call again to update it. */
    suspend fun track(state: JsonObject) = ffiCall { ffi.track(state.toString()) }

    /** Tracks [state] encoded with the client's serializer (it must encode to a JSON object). */
    suspend inline fun <reified T> track(state: T) = track(serializer.encodeToJsonElement(state).jsonObject)

    suspend fun untrack() = ffiCall { ffi.untrack() }

    /** The current presence state: key → the presences tracked under it. */
    fun presenceState(): Map<String, List<Presence>> =
        Json.parseToJsonElement(ffiCall { ffi.presenceStateJson() }).jsonObject.mapValues { (_, v) -> presences(v) }

    /** Every event of this channel (statuses, broadcasts, presence, changes, system), cold. */
    fun events(): Flow<RealtimeEvent> = events.flow()

    /** Broadcasts named [event] (case-insensitive; `"*"` for all), cold. */
    fun broadcastFlow(event: String): Flow<BroadcastMessage> =
        if (event == "*") broadcasts.flow() else broadcasts.flow { it.event.equals(event, ignoreCase = true) }

    /**
     * Broadcasts named [event] with their JSON payload decoded as [T] (supabase-kt's
     * `broadcastFlow<T>`). Payloads that do not decode (and binary ones) are skipped and logged
     * on the `io.supabase.realtime` logger.
     */
    @JvmName("broadcastFlowOf")
    inline fun <reified T> broadcastFlow(event: String): Flow<T> = broadcastFlow(event, serializer.serializersModule.serializer<T>())

    fun <T> broadcastFlow(event: String, deserializer: DeserializationStrategy<T>): Flow<T> =
        broadcastFlow(event).mapNotNull { m ->
            val payload = m.payload ?: return@mapNotNull null
            try {
                asJsonTree(deserializer, payload) ?: serializer.decodeFromJsonElement(deserializer, payload)
            } catch (e: IllegalArgumentException) {
                log.warning("$topic: broadcast '${m.event}' skipped, not a ${deserializer.descriptor.serialName}: ${e.message}")
                null
            }
        }

    /**
     * [payload] itself when [T] is the JSON tree type it already is: kotlinx.serialization would
     * copy it entry by entry.
     */
    @Suppress("UNCHECKED_CAST")
    private fun <T> asJsonTree(deserializer: DeserializationStrategy<T>, payload: JsonElement): T? = when {
        deserializer === JsonElement.serializer() -> payload as T
        deserializer === JsonObject.serializer() && payload is JsonObject -> payload as T
        else -> null
    }

    /**
     * Database changes of type [T] ([PostgresAction.Insert], `Update`, `Delete`, or
     * [PostgresAction] for all) in [schema], narrowed by [filter]. The binding is added when
     * this is called, so call it before [subscribe] (afterwards it throws
     * [RealtimeException.InvalidArgument]); the returned flow is cold like the others.
     */
    inline fun <reified T : PostgresAction> postgresChangeFlow(
        schema: String = "public",
        noinline filter: PostgresChangeFilter.() -> Unit = {},
    ): Flow<T> = postgresChangeFlow(T::class, schema, filter)

    @PublishedApi
    internal fun <T : PostgresAction> postgresChangeFlow(
        action: KClass<T>,
        schema: String,
        filter: PostgresChangeFilter.() -> Unit,
    ): Flow<T> {
        val event = when (action) {
            PostgresAction.Insert::class -> "INSERT"
            PostgresAction.Update::class -> "UPDATE"
            PostgresAction.Delete::class -> "DELETE"
            else -> "*"
        }
        val binding = PostgresChangeFilter(event, schema).apply(filter).toFfi()
        val fanout = synchronized(changes) {
            // The binding's index is the number of bindings added before it.
            ffiCall { ffi.addPostgresChanges(binding) }
            val index = changes.size
            Fanout("postgres_changes") { batch -> changesOf(batch, index) }.also { changes += it }
        }
        return fanout.flow().filterIsInstance(action)
    }

    /**
     * Presence joins and leaves (supabase-kt's `presenceChangeFlow`); decode states with
     * [decodeJoinsAs]/[decodeLeavesAs]. The first call turns presence on for this channel, so
     * make it before [subscribe] (or set `presence { enabled = true }`).
     */
    fun presenceChangeFlow(): Flow<PresenceAction> {
        synchronized(this) {
            if (!presenceEnabled) {
                ffiCall { ffi.enablePresence() }
                presenceEnabled = true
            }
        }
        return presence.flow()
    }

    override fun toString() = "RealtimeChannel($topic, ${status.value})"

    private companion object {
        val STATUS_TAG = Batch.typeTag("status")

        /** The changes of a batch that matched the binding at [index] (its `ids` hold it). */
        fun changesOf(batch: List<Pair<JsonObject, RealtimeEvent>>, index: Int): List<PostgresAction> =
            batch.mapNotNull { (raw, e) ->
                (e as? PostgresAction)?.takeIf { raw["ids"]?.jsonArray?.any { it.jsonPrimitive.int == index } == true }
            }
    }
}
