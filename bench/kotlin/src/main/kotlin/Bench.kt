// The JVM benchmark contestants: our Kotlin binding ("ours") and supabase-kt's realtime module
// ("supabase-kt"), each through its idiomatic API with default settings.
// Usage: Bench ours|supabase-kt <scenario> <url> <key> <name> <n>   (see bench/run.py)
// Scenarios: throughput, latency, memory, connect; prints READY / one `RESULT <json>` line.

import io.github.jan.supabase.createSupabaseClient
import io.github.jan.supabase.realtime.Realtime
import io.github.jan.supabase.realtime.broadcastFlow
import io.github.jan.supabase.realtime.channel
import io.github.jan.supabase.realtime.realtime
import io.supabase.realtime.RealtimeClient
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.async
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.jsonPrimitive
import kotlinx.serialization.json.long
import java.lang.management.ManagementFactory
import java.time.Instant
import java.util.concurrent.atomic.AtomicInteger
import kotlin.system.exitProcess
import io.github.jan.supabase.realtime.RealtimeChannel as KtChannel

private fun result(json: String) = println("RESULT $json").also { System.out.flush() }
private fun ready() = println("READY").also { System.out.flush() }
private fun nowUs(): Long = Instant.now().let { it.epochSecond * 1_000_000 + it.nano / 1000 }
private fun cpuS(): Double =
    (ManagementFactory.getOperatingSystemMXBean() as com.sun.management.OperatingSystemMXBean).processCpuTime / 1e9

/** What a contestant provides: a connected channel's broadcast flow, joins, and teardown. */
private interface Contestant {
    /** Opens a client; [join] creates and subscribes channels on it. */
    suspend fun open(url: String, key: String)
    fun broadcasts(channel: String): Flow<JsonObject>
    suspend fun join(channel: String)
    suspend fun close()
    /** Data events the client itself dropped, when it counts them (ours); null otherwise. */
    fun dropped(): Long? = null
}

private class Ours : Contestant {
    private lateinit var client: RealtimeClient
    override suspend fun open(url: String, key: String) {
        client = RealtimeClient(url, key)
    }
    override fun broadcasts(channel: String) = client.channel(channel).broadcastFlow<JsonObject>("e")
    override suspend fun join(channel: String) = client.channel(channel).subscribe()
    override suspend fun close() = client.close()
    override fun dropped() = client.metrics().droppedEvents
}

private class SupabaseKt : Contestant {
    private lateinit var supabase: io.github.jan.supabase.SupabaseClient
    private val channels = HashMap<String, KtChannel>()
    override suspend fun open(url: String, key: String) {
        // supabase-kt derives ws://<host>/realtime/v1/websocket?vsn=1.0.0 from the project URL
        val http = url.replace("ws://", "http://").removeSuffix("/realtime/v1")
        supabase = createSupabaseClient(http, key) { install(Realtime) }
    }
    private fun ch(name: String) = synchronized(channels) { channels.getOrPut(name) { supabase.channel(name) } }
    override fun broadcasts(channel: String) = ch(channel).broadcastFlow<JsonObject>("e")
    override suspend fun join(channel: String) = ch(channel).subscribe(blockUntilSubscribed = true)
    override suspend fun close() {
        supabase.realtime.removeAllChannels()
        supabase.realtime.disconnect()
        supabase.close()
    }
}

/** First and last delivery of a throughput run (written by the collector, read by main). */
private class Times {
    @Volatile var t0 = 0L
    @Volatile var c0 = 0.0
    @Volatile var t1 = 0L
}

/**
 * Leaves in the process only what stays, the same for both contestants, so that the RSS read after
 * READY is per-channel state and not the JVM's transient memory: waits until the JIT compiler has
 * been idle for a second (the join path is compiled while channels join) and for HotSpot's arena
 * chunk pool to be cleaned (every 5 s), collects garbage with a heap that shrinks to what is live
 * (without it, the committed heap reflects how much garbage startup made), and returns freed malloc
 * memory to the OS (glibc keeps it otherwise: the JIT's freed arenas showed up as ~20 MB of RSS at
 * 1,000 channels that Native Memory Tracking did not account for).
 */
private suspend fun settleMemory() {
    val jit = ManagementFactory.getCompilationMXBean()
    var last = -1L
    val deadline = System.nanoTime() + 30_000_000_000
    while (System.nanoTime() < deadline) {
        val now = jit.totalCompilationTime
        if (now == last) break
        last = now
        delay(1_000)
    }
    delay(5_500)
    val hotspot = ManagementFactory.getPlatformMXBean(com.sun.management.HotSpotDiagnosticMXBean::class.java)
    hotspot.setVMOption("MinHeapFreeRatio", "0")
    hotspot.setVMOption("MaxHeapFreeRatio", "10")
    System.gc()
    ManagementFactory.getPlatformMBeanServer().invoke(
        javax.management.ObjectName("com.sun.management:type=DiagnosticCommand"),
        "systemTrimNativeHeap", arrayOf<Any>(arrayOf<String>()), arrayOf(Array<String>::class.java.name),
    )
}

/** Collects [flow] on Dispatchers.Default from now on (the listener is registered before this returns). */
private fun CoroutineScope.consume(flow: Flow<JsonObject>, each: (JsonObject) -> Unit) =
    launch(Dispatchers.Default, start = CoroutineStart.UNDISPATCHED) { flow.collect(each) }

fun main(args: Array<String>): Unit = runBlocking {
    val (which, scenario, url, key, name) = args
    val n = args[5].toInt()
    val make = { if (which == "ours") Ours() else SupabaseKt() }
    when (scenario) {
        "throughput" -> {
            val c = make()
            c.open(url, key)
            val count = AtomicInteger()
            val t = Times()
            val job = consume(c.broadcasts(name)) { msg ->
                msg["i"]!!.jsonPrimitive.long
                val k = count.incrementAndGet()
                val now = System.nanoTime()
                if (k == 1) { t.t0 = now; t.c0 = cpuS() }
                t.t1 = now
            }
            c.join(name)
            // Done when all arrived (or were counted as dropped), or after 3 s without progress.
            var last = -1
            var idleSince = System.nanoTime()
            val deadline = System.nanoTime() + 300_000_000_000
            while (System.nanoTime() < deadline) {
                val k = count.get()
                if (k + (c.dropped() ?: 0) >= n) break
                if (k != last) { last = k; idleSince = System.nanoTime() }
                else if (k > 0 && System.nanoTime() - idleSince > 3_000_000_000) break
                delay(20)
            }
            val c1 = cpuS()
            val received = count.get()
            val dropped = c.dropped() ?: (n - received).toLong()
            job.cancel()
            result("""{"n": ${received - 1}, "secs": ${(t.t1 - t.t0) / 1e9}, "cpu_s": ${c1 - t.c0}, "received": $received, "dropped": $dropped}""")
            c.close()
        }
        "latency" -> {
            val c = make()
            c.open(url, key)
            val lat = java.util.concurrent.ConcurrentLinkedQueue<Long>()
            val all = kotlinx.coroutines.CompletableDeferred<Unit>()
            consume(c.broadcasts(name)) { msg ->
                lat.add(nowUs() - msg["t"]!!.jsonPrimitive.long)
                if (lat.size >= n) all.complete(Unit)
            }
            c.join(name)
            ready()
            kotlinx.coroutines.withTimeoutOrNull(120_000) { all.await() }
            result("""{"lat_us": ${lat.joinToString(",", "[", "]")}}""")
            c.close()
        }
        "memory" -> {
            val c = make()
            c.open(url, key)
            (0 until n).map { i -> async { c.join("$name-$i") } }.awaitAll()
            settleMemory()
            ready()
            kotlinx.coroutines.withContext(Dispatchers.IO) { System.`in`.readBytes() }
            c.close()
        }
        "connect" -> {
            val ms = ArrayList<Double>()
            for (i in 0 until n) {
                val t0 = System.nanoTime()
                val c = make()
                c.open(url, key)
                c.join("$name-$i")
                ms += (System.nanoTime() - t0) / 1e6
                c.close()
            }
            result("""{"ms": ${ms.joinToString(",", "[", "]")}}""")
        }
        else -> error("unknown scenario $scenario")
    }
    exitProcess(0)
}
