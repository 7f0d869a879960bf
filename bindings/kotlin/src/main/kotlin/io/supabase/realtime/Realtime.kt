package io.supabase.realtime

import io.supabase.realtime.ffi.BroadcastListener
import io.supabase.realtime.ffi.BroadcastMessage
import io.supabase.realtime.ffi.ChannelOptions
import io.supabase.realtime.ffi.ChannelState
import io.supabase.realtime.ffi.ClientOptions
import io.supabase.realtime.ffi.ConnectionState
import io.supabase.realtime.ffi.EventListener
import io.supabase.realtime.ffi.Payload
import io.supabase.realtime.ffi.PostgresChangeListener
import io.supabase.realtime.ffi.PostgresChangePayload
import io.supabase.realtime.ffi.PostgresChangesFilter
import io.supabase.realtime.ffi.PresenceEvent
import io.supabase.realtime.ffi.PresenceListener
import io.supabase.realtime.ffi.SubscribeStatus
import io.supabase.realtime.ffi.TokenProvider
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.consumeAsFlow
import kotlinx.coroutines.flow.onCompletion
import kotlinx.serialization.json.JsonElement
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.jsonArray
import kotlinx.serialization.json.jsonObject
import io.supabase.realtime.ffi.RealtimeChannel as FfiChannel
import io.supabase.realtime.ffi.RealtimeClient as FfiClient
import io.supabase.realtime.ffi.RealtimeEvent as FfiEvent

/**
 * A Supabase Realtime client: one WebSocket, many channels.
 *
 * ```
 * val client = RealtimeClient(ClientOptions(url = "https://abc.supabase.co/realtime/v1", apiKey = anonKey))
 * val room = client.channel("room1")
 * val events = room.events()          // registered now; collect once
 * room.subscribe()
 * room.send("hello", buildJsonObject { put("n", 1) })
 * events.collect { println(it) }
 * ```
 *
 * Failures throw `io.supabase.realtime.ffi.RealtimeException` (`ChannelException(reason, recoverable)`
 * carries the server's reason). Listeners run on the client's dispatch thread (never the network thread); [events] flows hand
 * events over through an unbounded buffer. [close] shuts the client down and releases it.
 */
class RealtimeClient(options: ClientOptions, tokenProvider: (() -> String?)? = null) : AutoCloseable {
    val ffi: FfiClient = FfiClient(
        options,
        tokenProvider?.let { f -> object : TokenProvider { override fun token(): String? = f() } },
    )

    /** Starts connecting (and keeps reconnecting until [disconnect]). */
    fun connect() = ffi.connect()

    /** Connects if needed and returns once the socket is open. */
    suspend fun connected() = ffi.connected()

    fun disconnect() = ffi.disconnect()

    /** Sets the user JWT, pushed to every joined channel; null falls back to the API key. */
    fun setAuth(token: String?) = ffi.setAuth(token)

    val connectionState: ConnectionState get() = ffi.connectionState()

    /** The channel for topic `realtime:<name>`. */
    fun channel(name: String, options: ChannelOptions = ChannelOptions()): RealtimeChannel =
        RealtimeChannel(this, ffi.channel(name, options))

    /** Every event of this client, from now on; the flow ends when the client shuts down. */
    fun events(): Flow<RealtimeEvent> = eventFlow(ffi, ffi::onEvent) {
        it is RealtimeEvent.ConnectionStatus && it.state == ConnectionState.SHUT_DOWN
    }

    fun removeListener(id: ULong) = ffi.removeListener(id)

    /** Shuts the client down for good and releases the native object. */
    override fun close() {
        ffi.shutdown()
        ffi.close()
    }
}

/**
 * One channel (topic `realtime:<name>`). Register presence and postgres listeners (or call
 * [events]/[postgresChanges]) before [subscribe]. Single-use: once closed, get a new one.
 */
class RealtimeChannel internal constructor(val client: RealtimeClient, val ffi: FfiChannel) {
    val topic: String get() = ffi.topic()
    val state: ChannelState get() = ffi.state()

    /** This channel's events, registered now (collect once); ends after the final CLOSED status. */
    fun events(): Flow<RealtimeEvent> = eventFlow(client.ffi, ffi::onEvent) {
        it is RealtimeEvent.ChannelStatus && it.topic == topic && it.status == SubscribeStatus.CLOSED
    }

    /** Calls [listener] on the dispatch thread for broadcasts named [event] (`*` = all). */
    fun onBroadcast(event: String = "*", listener: (RealtimeEvent.Broadcast) -> Unit): ULong =
        ffi.onBroadcast(event, object : BroadcastListener {
            override fun onBroadcast(message: BroadcastMessage) = listener(message.toEvent())
        })

    /** Presence sync/join/leave on the dispatch thread; turns presence on for this channel. */
    fun onPresence(listener: (RealtimeEvent.Presence) -> Unit): ULong =
        ffi.onPresence(object : PresenceListener {
            override fun onPresence(event: PresenceEvent) = listener(event.toEvent())
        })

    /** A postgres-changes binding (before [subscribe]); [listener] runs on the dispatch thread. */
    fun onPostgresChanges(
        filter: PostgresChangesFilter,
        listener: (RealtimeEvent.PostgresChange) -> Unit,
    ): ULong = ffi.onPostgresChanges(filter, object : PostgresChangeListener {
        override fun onChange(change: PostgresChangePayload) = listener(change.toEvent())
    })

    /** Joins; returns on SUBSCRIBED, throws `RealtimeException` with the server's reason otherwise. */
    suspend fun subscribe() = ffi.subscribe()

    /** Starts joining without waiting (usable inside listeners). */
    fun subscribeNowait() = ffi.subscribeNowait()

    /** Broadcasts JSON; with `broadcastAck` returns once the server acknowledged. */
    suspend fun send(event: String, payload: JsonElement) = ffi.sendBroadcast(event, Payload.Json(payload.toString()))

    /** Broadcasts bytes (binary frame, vsn 2.0.0). */
    suspend fun send(event: String, payload: ByteArray) = ffi.sendBroadcast(event, Payload.Binary(payload))

    /** Queues a JSON broadcast without waiting (usable inside listeners). */
    fun sendNowait(event: String, payload: JsonElement) =
        ffi.sendBroadcastNowait(event, Payload.Json(payload.toString()))

    /** Broadcasts over REST (no join needed). */
    suspend fun httpSend(event: String, payload: JsonElement) = ffi.httpSend(event, Payload.Json(payload.toString()))

    suspend fun track(meta: JsonObject) = ffi.track(meta.toString())
    suspend fun untrack() = ffi.untrack()

    /** key → metas (each with `presence_ref`). */
    fun presenceState(): Map<String, List<JsonObject>> =
        parse(ffi.presenceStateJson()).jsonObject.mapValues { (_, v) -> v.jsonArray.map { it.jsonObject } }

    /** Leaves; returns once the server confirmed. */
    suspend fun unsubscribe() = ffi.unsubscribe()

    /** Leaves without waiting (usable inside listeners). */
    fun unsubscribeNowait() = ffi.unsubscribeNowait()
}

/**
 * Registers an [EventListener] at once (so nothing after this call is missed) and exposes it as
 * a single-collection flow; the listener is removed when collection ends.
 */
private fun eventFlow(
    client: FfiClient,
    register: (EventListener) -> ULong,
    isLast: (RealtimeEvent) -> Boolean,
): Flow<RealtimeEvent> {
    val buffer = Channel<RealtimeEvent>(Channel.UNLIMITED)
    val id = register(object : EventListener {
        override fun onEvent(event: FfiEvent) {
            val e = event.toEvent()
            buffer.trySend(e)
            if (isLast(e)) buffer.close()
        }
    })
    return buffer.consumeAsFlow().onCompletion { client.removeListener(id) }
}
