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
import kotlinx.coroutines.flow.transform
import java.util.concurrent.CopyOnWriteArrayList

/**
 * A `callbackFlow` of batches whose [register] runs as soon as collection starts (unconfined),
 * with an unbounded buffer, flattened: see [Fanout]. The producer sends one list per batch the
 * library delivers, so the collector suspends and resumes (a thread hand-off when it keeps up)
 * once per batch of up to 256 events instead of once per event.
 */
internal fun <T> coldBatchFlow(register: suspend ProducerScope<List<T>>.() -> Unit): Flow<T> =
    callbackFlow(register).buffer(Channel.UNLIMITED).flowOn(Dispatchers.Unconfined)
        .transform { batch -> for (x in batch) emit(x) }

/**
 * Hands values from the library's dispatch thread to any number of flow collectors. Each
 * collection is a cold `callbackFlow` that adds a sink when it starts and removes it when the
 * collector stops, so a flow can be collected any number of times, each from "now" on.
 *
 * The sink is added synchronously when collection starts (the producer runs unconfined), so
 * `launch(start = CoroutineStart.UNDISPATCHED) { flow.collect { ... } }` followed by
 * `subscribe()` misses nothing. The buffer is unbounded (no silent drop; the library's own
 * queue is bounded and reports `Lagged`); `.buffer(n, DROP_OLDEST)` or `.conflate()` on the
 * flow bound what the collector is handed.
 */
internal class Fanout<T> {
    private class Sink<T>(val accept: (T) -> Boolean, val out: SendChannel<List<T>>)

    private val sinks = CopyOnWriteArrayList<Sink<T>>()

    @Volatile
    private var closed = false

    val isEmpty: Boolean get() = sinks.isEmpty()

    fun flow(accept: (T) -> Boolean = { true }): Flow<T> = coldBatchFlow {
        val sink = Sink(accept, channel)
        sinks += sink
        if (closed) channel.close()
        awaitClose { sinks -= sink }
    }

    /** Hands one delivered batch's values to every sink, as one list each. On the dispatch thread. */
    fun emit(values: List<T>) {
        if (values.isEmpty()) return
        for (s in sinks) {
            val accepted = values.filter(s.accept)
            if (accepted.isNotEmpty()) s.out.trySend(accepted)
        }
    }

    /** Ends every collection (the channel or client is gone for good). */
    fun close() {
        closed = true
        for (s in sinks) s.out.close()
    }
}
