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
import kotlinx.serialization.json.JsonObject
import java.util.concurrent.CopyOnWriteArrayList

/**
 * A `callbackFlow` of delivered batches whose [register] runs as soon as collection starts
 * (unconfined), with an unbounded buffer, unpacked by [unpack] in the collector's context: see
 * [Fanout]. The producer sends one item per batch the library delivers, so the collector
 * suspends and resumes (a thread hand-off when it keeps up) once per batch of up to 256 events
 * instead of once per event, and decodes the batch itself, off the library's dispatch thread.
 */
internal fun <B, T> coldBatchFlow(register: suspend ProducerScope<B>.() -> Unit, unpack: (B) -> List<T>): Flow<T> =
    callbackFlow(register).buffer(Channel.UNLIMITED).flowOn(Dispatchers.Unconfined)
        .transform { batch -> for (x in unpack(batch)) emit(x) }

/**
 * Hands batches from the library's dispatch thread to any number of flow collectors, which
 * decode them ([Batch]) and keep what [select] takes from each. Each collection is a cold
 * `callbackFlow` that adds a sink when it starts and removes it when the collector stops, so a
 * flow can be collected any number of times, each from "now" on.
 *
 * The sink is added synchronously when collection starts (the producer runs unconfined), so
 * `launch(start = CoroutineStart.UNDISPATCHED) { flow.collect { ... } }` followed by
 * `subscribe()` misses nothing. The buffer is unbounded (no silent drop; the library's own
 * queue is bounded and reports `Lagged`); `.buffer(n, DROP_OLDEST)` or `.conflate()` on the
 * flow bound what the collector is handed. Only batches that may hold events of JSON `type`
 * [type] (null: any) reach the sinks, so a collector does not wake for batches of other kinds.
 */
internal class Fanout<T>(type: String?, private val select: (List<Pair<JsonObject, RealtimeEvent>>) -> List<T>) {
    private class Sink(val out: SendChannel<Delivered>)

    private val tag = type?.let(Batch::typeTag)
    private val sinks = CopyOnWriteArrayList<Sink>()

    @Volatile
    private var closed = false

    fun flow(accept: (T) -> Boolean = { true }): Flow<T> = coldBatchFlow<Delivered, T>({
        val sink = Sink(channel)
        sinks += sink
        if (closed) channel.close()
        awaitClose { sinks -= sink }
    }) { delivered -> select(delivered.events).filter(accept) }

    /** Hands one delivered batch to every sink. On the dispatch thread. */
    fun emit(delivered: Delivered) {
        if (sinks.isEmpty() || !delivered.mayHold(tag)) return
        for (s in sinks) s.out.trySend(delivered)
    }

    /** Ends every collection (the channel or client is gone for good). */
    fun close() {
        closed = true
        for (s in sinks) s.out.close()
    }
}
