package io.supabase.realtime

import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.ProducerScope
import kotlinx.coroutines.channels.SendChannel
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.flow.flowOn
import java.util.concurrent.CopyOnWriteArrayList

/**
 * A `callbackFlow` whose [register] runs as soon as collection starts (unconfined), with an
 * unbounded buffer: see [Fanout].
 */
internal fun <T> coldFlow(register: suspend ProducerScope<T>.() -> Unit): Flow<T> =
    callbackFlow(register).buffer(Channel.UNLIMITED).flowOn(Dispatchers.Unconfined)

/**
 * Hands values from the library's dispatch thread to any number of flow collectors. Each
 * collection is a cold `callbackFlow` that adds a sink when it starts and removes it when the
 * collector stops, so a flow can be collected any number of times, each from "now" on.
 *
 * The sink is added synchronously when collection starts (the producer runs unconfined), so
 * `launch(start = CoroutineStart.UNDISPATCHED) { flow.collect { ... } }` followed by
 * `subscribe()` misses nothing. The buffer is unbounded by default (no silent drop; the
 * library's own queue is bounded and reports `Lagged`); `.buffer(n, DROP_OLDEST)` or
 * `.conflate()` on the flow replace it.
 */
internal class Fanout<T> {
    private class Sink<T>(val accept: (T) -> Boolean, val out: SendChannel<T>)

    private val sinks = CopyOnWriteArrayList<Sink<T>>()

    @Volatile
    private var closed = false

    val isEmpty: Boolean get() = sinks.isEmpty()

    fun flow(accept: (T) -> Boolean = { true }): Flow<T> = coldFlow {
        val sink = Sink(accept, channel)
        sinks += sink
        if (closed) channel.close()
        awaitClose { sinks -= sink }
    }

    /** Called on the dispatch thread. */
    fun emit(value: T) {
        for (s in sinks) if (s.accept(value)) s.out.trySend(value)
    }

    /** Ends every collection (the channel or client is gone for good). */
    fun close() {
        closed = true
        for (s in sinks) s.out.close()
    }
}
