package io.supabase.realtime

import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.runBlocking
import kotlinx.serialization.json.Json
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
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
 * Failures throw [RealtimeException], one type per cause. The library delivers events on its own dispatch thread
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
    private val registry = ConcurrentHashMap<String, RealtimeChannel>()

    /** Counted down by the client's final event (`SHUT_DOWN`, after every channel's final CLOSED). */
    private val shutDown = CountDownLatch(1)

    init {
        ffiCall {
            ffi.onClientEvents(BatchListener(serializer, "shutdown delivery failed") { batch ->
                for ((_, e) in batch.events) {
                    if (e is RealtimeEvent.ConnectionChange && e.state == ConnectionState.SHUT_DOWN) shutDown.countDown()
                }
            })
        }
    }

    /**
     * The socket's state. Registered on first use (a listener for the client's own events,
     * which are few: its channels' events do not pass through it).
     */
    val status: StateFlow<ConnectionState> by lazy {
        val state = MutableStateFlow(ffi.connectionState().toPublic())
        runCatching {
            ffiCall {
                ffi.onClientEvents(BatchListener(serializer, "connection status delivery failed") { batch ->
                    for ((_, e) in batch.events) if (e is RealtimeEvent.ConnectionChange) state.value = e.state
                })
            }
        }.onFailure { state.value = ConnectionState.SHUT_DOWN } // closed: nothing more will come
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
        registry.compute(name) { _, existing ->
            existing?.takeUnless { it.finished }
                ?: RealtimeChannel(ffiCall { ffi.channel(name, ChannelConfig().apply(configure).toFfi()) }, serializer)
        }!!

    /**
     * The live channels (subscribed or not yet, and not ended), in creation order, as
     * realtime-js' `getChannels()`: the library's own list, so a channel ended by the server
     * or removed is not in it.
     */
    val channels: List<RealtimeChannel>
        get() {
            val live = ffiCall { ffi.channels() }.map { ch -> ch.topic().also { ch.close() } }
            val byTopic = registry.values.filter { !it.finished }.associateBy { it.topic }
            return live.mapNotNull { byTopic[it] }
        }

    /** The live channels, by name (supabase-kt's `subscriptions`). */
    val subscriptions: Map<String, RealtimeChannel>
        get() = channels.associateBy { it.topic.removePrefix("realtime:") }

    /**
     * Leaves [channel] and forgets it, as realtime-js' `removeChannel`: its flows see one
     * final CLOSED status (reason `removed`) and complete. Returns once the server confirmed
     * (or the push timed out).
     */
    suspend fun removeChannel(channel: RealtimeChannel) {
        ffiCall { ffi.removeChannel(channel.ffi) }
        registry.remove(channel.topic.removePrefix("realtime:"), channel)
    }

    /** Removes every channel of this client (see [removeChannel]). */
    suspend fun removeAllChannels() {
        ffiCall { ffi.removeAllChannels() }
        registry.values.removeIf { it.finished }
    }

    /**
     * Every event of this client from now on (all channels, connection, heartbeats), cold.
     * The flow completes after the client's final `SHUT_DOWN` status; collecting it after
     * [close] throws [RealtimeException.Shutdown].
     */
    fun events(): Flow<RealtimeEvent> = coldBatchFlow<Delivered, RealtimeEvent>({
        val id = ffiCall {
            ffi.onEvents(BatchListener(serializer, "event delivery failed") { batch ->
                // Decoded here only when it may hold the end (SHUT_DOWN), to cut it there.
                if (batch.mentions(SHUT_DOWN_STATE)) {
                    val all = batch.events
                    val end = all.indexOfFirst { (_, e) -> e is RealtimeEvent.ConnectionChange && e.state == ConnectionState.SHUT_DOWN }
                    trySend(Decoded(all.subList(0, if (end < 0) all.size else end + 1)))
                    if (end >= 0) channel.close()
                } else {
                    trySend(batch)
                }
            })
        }
        awaitClose { ffi.removeListener(id) }
    }) { delivered -> delivered.events.map { it.second } }

    /** A snapshot of the client's counters. */
    fun metrics(): Metrics = ffi.metrics().toPublic()

    /** The network changed (e.g. from Android's ConnectivityManager): check the link now. */
    fun networkChanged() = ffiCall { ffi.networkChanged() }

    fun appBackgrounded() = ffiCall { ffi.appBackgrounded() }
    fun appForegrounded() = ffiCall { ffi.appForegrounded() }

    /**
     * Shuts the client down for good. Idempotent. Every channel's flows see its final CLOSED
     * status (reason `client shut down`) and complete normally, as does [events]; this waits
     * for those final events for at most [CLOSE_TIMEOUT_MS] (not at all when called from a
     * flow's producer on the library's dispatch thread). Later calls throw
     * [RealtimeException.Shutdown]; state and [metrics] stay readable.
     */
    override fun close() {
        ffi.shutdown()
        if (!BatchListener.onDispatchThread()) {
            val deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(CLOSE_TIMEOUT_MS)
            val left = { (deadline - System.nanoTime()).coerceAtLeast(0) }
            shutDown.await(left(), TimeUnit.NANOSECONDS)
            // (Each channel's final CLOSED goes to its own listener, maybe after SHUT_DOWN.)
            for (c in registry.values) if (c.subscribed) c.ended.await(left(), TimeUnit.NANOSECONDS)
        }
        // Normally every flow has ended by now; this ends the rest (e.g. a wait cut short).
        registry.values.forEach { it.closeFlows() }
    }

    companion object {
        /** How long [close] waits for the final statuses to be delivered. */
        const val CLOSE_TIMEOUT_MS: Long = 5_000

        private const val SHUT_DOWN_STATE = "\"state\":\"SHUT_DOWN\""
    }

    private class TokenAdapter(val provider: suspend () -> String?) : FfiTokenProvider {
        override fun token(): String? = runBlocking { provider() }
    }
}
