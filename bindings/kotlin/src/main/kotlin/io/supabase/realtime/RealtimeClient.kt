package io.supabase.realtime

import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.runBlocking
import kotlinx.serialization.json.Json
import java.util.concurrent.ConcurrentHashMap
import io.supabase.realtime.ffi.RealtimeClient as FfiClient
import io.supabase.realtime.ffi.TokenProvider as FfiTokenProvider

/**
 * A Supabase Realtime client: one WebSocket, many channels. Creating it does not connect;
 * subscribing a channel (or [connect]) does. [close] shuts it down for good.
 *
 * ```
 * RealtimeClient("https://abc.supabase.co/realtime/v1", anonKey) {
 *     heartbeatInterval = 15.seconds
 * }.use { client ->
 *     val channel = client.channel("room1")
 *     val messages = channel.broadcastFlow<Message>("message")
 *     channel.subscribe()
 *     messages.collect { println(it) }
 * }
 * ```
 *
 * Failures throw [RealtimeException]. The library delivers events on its own dispatch thread
 * (`supa-dispatch`) into the flows' buffers; collectors run wherever their coroutines run.
 *
 * @param url `http(s)://<host>/realtime/v1` or a full `ws(s)://.../websocket` URL.
 * @param apiKey the project's API key (sent as `apikey`).
 */
class RealtimeClient(url: String, apiKey: String, configure: RealtimeConfig.() -> Unit = {}) : AutoCloseable {
    init {
        CallbackThreads.install()
    }

    private val config = RealtimeConfig().apply(configure)
    internal val serializer: Json = config.serializer
    internal val ffi: FfiClient = ffiCall {
        FfiClient(config.toFfi(url, apiKey), config.accessTokenProvider?.let { TokenAdapter(it) })
    }
    private val channels = ConcurrentHashMap<String, RealtimeChannel>()

    /**
     * The socket's state. Registered on first use: from then on every batch of this client's
     * events also passes through this listener (decoded only when it holds a connection event).
     */
    val status: StateFlow<ConnectionState> by lazy {
        val state = MutableStateFlow(ffi.connectionState().toPublic())
        val connectionEvents = "\"type\":\"connection\""
        ffi.onEvents(BatchListener(serializer, "connection status delivery failed", connectionEvents) { batch ->
            for ((_, e) in batch) if (e is RealtimeEvent.ConnectionChange) state.value = e.state
        })
        state.asStateFlow()
    }

    /** Starts connecting (and keeps reconnecting until [disconnect]). */
    fun connect() = ffiCall { ffi.connect() }

    /** Connects if needed and returns once the socket is open. */
    suspend fun connected() = ffiCall { ffi.connected() }

    /** Closes the socket and stops reconnecting; channels rejoin on the next [connect]. */
    fun disconnect() = ffiCall { ffi.disconnect() }

    /** Sets the user JWT, pushed to every joined channel; null falls back to the API key. */
    fun setAuth(token: String?) = ffiCall { ffi.setAuth(token) }

    /**
     * The channel for topic `realtime:<name>`. While a channel of that name is live, it is
     * returned as is (and [configure] is ignored), as in realtime-js and supabase-kt.
     */
    fun channel(name: String, configure: ChannelConfig.() -> Unit = {}): RealtimeChannel =
        channels.compute(name) { _, existing ->
            existing?.takeUnless { it.finished }
                ?: RealtimeChannel(ffiCall { ffi.channel(name, ChannelConfig().apply(configure).toFfi()) }, serializer)
        }!!

    /** The live channels, by name. */
    val subscriptions: Map<String, RealtimeChannel>
        get() = channels.filterValues { !it.finished }

    /** Unsubscribes [channel] and forgets it. */
    suspend fun removeChannel(channel: RealtimeChannel) {
        channels.values.remove(channel)
        if (!channel.finished) channel.unsubscribe()
    }

    /** Unsubscribes every channel of this client. */
    suspend fun removeAllChannels() {
        for (c in channels.values.toList()) removeChannel(c)
    }

    /** Every event of this client from now on (all channels, connection, heartbeats), cold. */
    fun events(): Flow<RealtimeEvent> = coldFlow {
        val id = ffi.onEvents(BatchListener(serializer, "event delivery failed") { batch ->
            for ((_, e) in batch) {
                trySend(e)
                if (e is RealtimeEvent.ConnectionChange && e.state == ConnectionState.SHUT_DOWN) channel.close()
            }
        })
        awaitClose { ffi.removeListener(id) }
    }

    /** A snapshot of the client's counters. */
    fun metrics(): Metrics = ffi.metrics().toPublic()

    /** The network changed (e.g. from Android's ConnectivityManager): check the link now. */
    fun networkChanged() = ffiCall { ffi.networkChanged() }

    fun appBackgrounded() = ffiCall { ffi.appBackgrounded() }
    fun appForegrounded() = ffiCall { ffi.appForegrounded() }

    /** Shuts the client down for good and releases the native object; every flow completes. */
    override fun close() {
        ffi.shutdown()
        channels.values.forEach { it.closeFlows() }
        ffi.close()
    }

    private class TokenAdapter(val provider: suspend () -> String?) : FfiTokenProvider {
        override fun token(): String? = runBlocking { provider() }
    }
}
