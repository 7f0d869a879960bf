package io.supabase.realtime

import io.supabase.realtime.ffi.IoCause
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Deferred
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.collect
import kotlinx.coroutines.flow.filterIsInstance
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.serialization.json.buildJsonObject
import kotlinx.serialization.json.put
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertInstanceOf
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.net.ServerSocket
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.time.Duration.Companion.milliseconds
import io.supabase.realtime.ffi.RealtimeException as FfiException

/** The join timeout of these clients: every failing call must end by it (plus slack on a loaded machine). */
private const val JOIN_TIMEOUT_MS = 2_000L
private const val SLACK_MS = 3_000L
private const val DEADLINE_MS = 10_000L

private fun failing(url: String = TestServer.url, key: String = TestServer.anonKey, configure: RealtimeConfig.() -> Unit = {}) =
    RealtimeClient(url, key) {
        pushTimeout = JOIN_TIMEOUT_MS.milliseconds
        reconnectDelays = listOf(100.milliseconds)
        rejoinDelays = listOf(100.milliseconds)
        configure()
    }

private fun test(body: suspend CoroutineScope.() -> Unit) = runBlocking { withTimeout(60_000) { body() } }

private fun <T> CoroutineScope.collectingAll(flow: Flow<T>) = async(start = CoroutineStart.UNDISPATCHED) { flow.toList() }

private suspend fun <T> Deferred<T>.within(): T = withTimeout(DEADLINE_MS) { await() }

/** A loopback port nothing listens on (bound, then released). */
private fun freePort(): Int = ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress()).use { it.localPort }

/** The statuses a channel's `events()` flow saw until it completed. */
private fun CoroutineScope.statuses(ch: RealtimeChannel) =
    collectingAll(ch.events().filterIsInstance<RealtimeEvent.SubscribeStatusChange>())

/** Exactly one CLOSED, the last status, with [reason]. */
private fun assertClosedOnce(seen: List<RealtimeEvent.SubscribeStatusChange>, reason: (String?) -> Boolean) {
    val closed = seen.filter { it.status == SubscribeStatus.CLOSED }
    assertEquals(1, closed.size, "$seen")
    assertEquals(SubscribeStatus.CLOSED, seen.last().status, "$seen")
    assertTrue(reason(closed[0].reason), "$seen")
}

/** Subscribes a new channel of [client], which must fail by itself within the join timeout. */
private suspend inline fun <reified E : RealtimeException> subscribeFails(client: RealtimeClient, name: String): E {
    val ch = client.channel(name)
    val started = System.nanoTime()
    val e = try {
        withTimeout(DEADLINE_MS) { ch.subscribe() }
        throw AssertionError("$name: subscribe() succeeded")
    } catch (e: RealtimeException) {
        e
    }
    val tookMs = (System.nanoTime() - started) / 1_000_000
    assertTrue(tookMs <= JOIN_TIMEOUT_MS + SLACK_MS, "$name: failed after $tookMs ms, beyond the join timeout")
    return assertInstanceOf(E::class.java, e, "$name: ${e::class.qualifiedName}: ${e.message}")
}

/**
 * The failure matrix against the real server on loopback (as tests/failures.rs and the Python
 * suite): each failure is its own exception type whose message names the cause, within the
 * join timeout, and every path that ends a channel ends its flows with exactly one CLOSED.
 */
class FailureTest {
    @Test
    fun aWrongKeyIsRefusedWithTheServers401() = test {
        failing(key = "not-a-key").use { c ->
            val e = subscribeFails<RealtimeException.Http.AuthRejected>(c, TestServer.unique("wrongkey"))
            assertEquals(401, e.status)
            assertTrue(e.message!!.startsWith("HTTP 401: the server refused the API key or token: "), e.message)
            assertTrue("JWT" in e.body, e.body)
        }
    }

    @Test
    fun anExpiredKeyIsRefusedWithTheExpiryText() = test {
        val expired = TestServer.userToken("11111111-1111-1111-1111-111111111111", expiresIn = -60)
        failing(key = expired).use { c ->
            val e = subscribeFails<RealtimeException.Http.AuthRejected>(c, TestServer.unique("expired"))
            assertTrue("expired" in e.message!!, e.message)
        }
    }

    @Test
    fun aServerNotListeningIsConnectionRefusedAndTheClientKeepsTrying() = test {
        val port = freePort()
        failing(url = "http://127.0.0.1:$port/realtime/v1").use { c ->
            val e = subscribeFails<RealtimeException.Io.ConnectionRefused>(c, TestServer.unique("down"))
            assertTrue(e.message!!.startsWith("connection refused: "), e.message)
            assertTrue("127.0.0.1:$port" in e.message!! && "is the server running?" in e.message!!, e.message)
            assertEquals(ConnectionState.CONNECTING, c.status.value)
        }
    }

    @Test
    fun aWrongPathIsNotFoundAndSaysWhereTheEndpointIs() = test {
        failing(url = TestServer.url.replace("/realtime/v1", "/nowhere/v1")).use { c ->
            val e = subscribeFails<RealtimeException.Http.NotFound>(c, TestServer.unique("lost"))
            assertTrue(e.message!!.startsWith("HTTP 404: ") && "/realtime/v1" in e.message!!, e.message)
        }
    }

    @Test
    fun aRefusedPrivateJoinIsUnauthorizedAndClosesOnce() = test {
        failing().use { c ->
            val name = TestServer.unique("secret")
            val ch = c.channel(name) { isPrivate = true }
            val seen = statuses(ch)
            val started = System.nanoTime()
            val e = assertThrows(RealtimeException.ChannelError.Unauthorized::class.java) { runBlocking { ch.subscribe() } }
            assertTrue((System.nanoTime() - started) / 1_000_000 <= JOIN_TIMEOUT_MS + SLACK_MS)
            assertEquals("Unauthorized", e.code)
            assertTrue(e.message!!.startsWith("channel error: Unauthorized: "), e.message)
            assertFalse(e.recoverable)
            assertClosedOnce(seen.within()) { it!!.startsWith("Unauthorized") }
        }
    }

    @Test
    fun the101stChannelIsRateLimitedWithinTheJoinTimeout() = test {
        failing().use { c ->
            val joined = (0 until 100).map { c.channel(TestServer.unique("c$it")) }
            joined.forEach { it.subscribe(blockUntilSubscribed = false) }
            joined.forEach { it.subscribe() }
            val e = subscribeFails<RealtimeException.ChannelError.RateLimitReached>(c, TestServer.unique("c100"))
            assertEquals("ChannelRateLimitReached", e.code)
            assertTrue(e.recoverable)
            assertTrue(e.message!!.startsWith("channel error: ChannelRateLimitReached"), e.message)
        }
    }

    @Test
    fun closeInTheMiddleOfSubscribeFailsItAndClosesEveryChannelOnce() = test {
        val c = failing()
        val joined = c.channel(TestServer.unique("joined"))
        joined.subscribe()
        val pending = c.channel(TestServer.unique("pending"))
        val seenJoined = statuses(joined)
        val seenPending = statuses(pending)
        val subscribing = async(start = CoroutineStart.UNDISPATCHED) { runCatching { pending.subscribe() } }
        c.close()
        val outcome = withTimeout(DEADLINE_MS) { subscribing.await() }
        // The join may have completed just before the close; if not, it failed with Shutdown.
        outcome.exceptionOrNull()?.let { assertInstanceOf(RealtimeException.Shutdown::class.java, it) }
        assertClosedOnce(seenJoined.within()) { it == "client shut down" }
        assertClosedOnce(seenPending.within()) { it == "client shut down" }
    }

    @Test
    fun aCollectorActiveAcrossCloseCompletesNormallyAfterTheFinalClosed() = test {
        val c = failing()
        val ch = c.channel(TestServer.unique("collected")) { broadcast { receiveOwnBroadcasts = true } }
        val everything = collectingAll(ch.events())
        val broadcasts = collectingAll(ch.broadcastFlow("x"))
        val clientEvents = collectingAll(c.events())
        val echoed = async(start = CoroutineStart.UNDISPATCHED) { ch.events().first { it is BroadcastMessage } }
        ch.subscribe()
        ch.send("x", buildJsonObject { put("n", 1) })
        echoed.within()
        c.close()
        c.close() // idempotent
        val seen = everything.within() // completes normally: no exception
        assertClosedOnce(seen.filterIsInstance<RealtimeEvent.SubscribeStatusChange>()) { it == "client shut down" }
        assertTrue(seen.last() is RealtimeEvent.SubscribeStatusChange, "$seen")
        assertEquals(1, broadcasts.within().size)
        val last = clientEvents.within().last()
        assertTrue(last is RealtimeEvent.ConnectionChange && last.state == ConnectionState.SHUT_DOWN, "$last")
        assertEquals(ChannelStatus.UNSUBSCRIBED, ch.status.value)
    }

    @Test
    fun callsAfterCloseThrowShutdownAndListenersAreRefused() = test {
        val c = failing()
        val ch = c.channel(TestServer.unique("late"))
        ch.subscribe()
        c.close()
        val calls: Map<String, suspend () -> Unit> = mapOf(
            "connect" to { c.connect() },
            "disconnect" to { c.disconnect() },
            "setAuth" to { c.setAuth("token") },
            "channel" to { c.channel("other") },
            "channels" to { c.channels },
            "events" to { c.events().collect() },
            "networkChanged" to { c.networkChanged() },
            "appForegrounded" to { c.appForegrounded() },
            "connected" to { c.connected() },
            "removeAllChannels" to { c.removeAllChannels() },
            "removeChannel" to { c.removeChannel(ch) },
            "subscribe" to { ch.subscribe() },
            "send" to { ch.send("x", buildJsonObject { put("n", 1) }) },
            "httpSend" to { ch.httpSend("x", buildJsonObject { put("n", 1) }) },
            "track" to { ch.track(buildJsonObject { put("n", 1) }) },
            "untrack" to { ch.untrack() },
            "unsubscribe" to { ch.unsubscribe() },
            "presenceState" to { ch.presenceState() },
            "presenceChangeFlow" to { ch.presenceChangeFlow() },
            "postgresChangeFlow" to { ch.postgresChangeFlow<PostgresAction>("public") { table = "t" } },
        )
        for ((name, call) in calls) {
            val e = runCatching { call() }.exceptionOrNull()
            assertInstanceOf(RealtimeException.Shutdown::class.java, e, "$name: $e")
            assertTrue("shut down" in e!!.message!!, "$name: ${e.message}")
        }
        c.close() // still idempotent
        assertEquals(ConnectionState.SHUT_DOWN, c.status.value)
        c.metrics() // still readable
        // The channel's flows had ended; a new collection completes at once.
        assertEquals(emptyList<RealtimeEvent>(), collectingAll(ch.events()).within())
    }

    @Test
    fun unsubscribeAndRemoveChannelCloseOnceWithTheirReason() = test {
        failing().use { c ->
            val bye = c.channel(TestServer.unique("bye"))
            val a = c.channel(TestServer.unique("a"))
            val b = c.channel(TestServer.unique("b"))
            val seen = listOf(bye, a, b).map { statuses(it) }
            listOf(bye, a, b).forEach { it.subscribe() }
            assertEquals(listOf(bye, a, b), c.channels)
            bye.unsubscribe()
            assertClosedOnce(seen[0].within()) { it == "left" }
            c.removeChannel(a)
            assertClosedOnce(seen[1].within()) { it == "removed" }
            assertEquals(listOf(b), c.channels)
            c.removeAllChannels()
            assertClosedOnce(seen[2].within()) { it == "removed" }
            assertEquals(emptyList<RealtimeChannel>(), c.channels)
            assertTrue(c.subscriptions.isEmpty())
        }
    }

    @Test
    fun everyCauseHasItsTypeAndAMessageThatNamesIt() {
        // Name resolution is mapped here rather than looked up: tests send nothing off this machine.
        val dns = FfiException.Io("could not resolve host \"nowhere.invalid\": Name or service not known", IoCause.HOST_NOT_FOUND).toPublic()
        assertInstanceOf(RealtimeException.Io.HostNotFound::class.java, dns)
        assertEquals("host not found: could not resolve host \"nowhere.invalid\": Name or service not known", dns.message)
        val cases = mapOf(
            FfiException.Http(403.toUShort(), "forbidden") to RealtimeException.Http.AuthRejected::class.java,
            FfiException.Http(500.toUShort(), "oops") to RealtimeException.Http.Status::class.java,
            FfiException.Io("reset", IoCause.OTHER) to RealtimeException.Io.Other::class.java,
            FfiException.Tls("bad certificate") to RealtimeException.Tls::class.java,
            FfiException.ChannelException("TenantNotFound: x", false) to RealtimeException.ChannelError.Refused::class.java,
            FfiException.ChannelException("PrivateOnly: y", false) to RealtimeException.ChannelError.Unauthorized::class.java,
            FfiException.Callback("boom") to RealtimeException.Callback::class.java,
        )
        for ((ffi, type) in cases) {
            val e = ffi.toPublic()
            assertInstanceOf(type, e)
            val detail = listOf("forbidden", "oops", "reset", "bad certificate", "TenantNotFound: x", "PrivateOnly: y", "boom")
            assertTrue(detail.any { it in e.message!! }, e.message)
            assertTrue(e.cause === ffi)
        }
        for (e in listOf(RealtimeException.Timeout(), RealtimeException.Shutdown(), RealtimeException.NotConnected(), RealtimeException.WouldDeadlock())) {
            assertTrue(e.message!!.length > 10, e.message)
        }
    }

    @Test
    fun theLoggerHearsTheLibraryAndCanBeTurnedOff() = test {
        val records = CopyOnWriteArrayList<Triple<LogLevel, String, String>>()
        Realtime.setLogger(LogLevel.DEBUG) { level, target, message -> records += Triple(level, target, message) }
        try {
            failing().use { c -> c.connected() }
            withTimeout(DEADLINE_MS) {
                while (records.none { it.first == LogLevel.INFO && it.third == "connected" }) kotlinx.coroutines.delay(10)
            }
            assertTrue(records.any { it.second == "supa_realtime::engine" } && records.all { it.second.isNotEmpty() }, "$records")
            assertTrue(records.any { it.first == LogLevel.DEBUG }, "$records")
        } finally {
            Realtime.setLogger(logger = null)
        }
        val before = records.size
        failing().use { c -> c.connected() }
        // Off: nothing more arrives (the library's "shutting down" of the first client may
        // still have been in flight, so compare against what a connect would log).
        assertTrue(records.drop(before).none { it.third == "connected" }, "$records")
    }

    @Test
    fun boundOptionsAreValidatedAndAPayloadOverTheBoundIsSkipped() = test {
        val bad = mapOf<String, RealtimeConfig.() -> Unit>(
            "max_payload_size must be at least 1024 (got 100)" to { maxPayloadSize = 100 },
            "max_message_size must not be negative (got -1)" to { maxMessageSize = -1 },
            "max_presence_keys must be at least 1 (got 0)" to { maxPresenceKeys = 0 },
            "max_presence_size must be at least 1024 (got 10)" to { maxPresenceSize = 10 },
        )
        for ((text, configure) in bad) {
            val e = assertThrows(RealtimeException.InvalidArgument::class.java) { failing(configure = configure) }
            assertTrue(text in e.message!!, e.message)
        }
        val name = TestServer.unique("bound")
        failing { maxPayloadSize = 2048 }.use { small ->
            failing().use { sender ->
                val rx = small.channel(name)
                val tx = sender.channel(name)
                val seen = collectingAll(small.events())
                val arrived = async(start = CoroutineStart.UNDISPATCHED) { rx.broadcastFlow("small").first() }
                rx.subscribe()
                tx.subscribe()
                tx.send("big", buildJsonObject { put("blob", "x".repeat(4096)) })
                tx.send("small", buildJsonObject { put("n", 1) })
                arrived.within()
                small.close()
                val events = seen.within()
                val broadcasts = events.filterIsInstance<BroadcastMessage>().map { it.event }
                assertEquals(listOf("small"), broadcasts)
                val errors = events.filterIsInstance<RealtimeEvent.ClientError>().map { it.message }
                assertEquals(1, errors.size, "$errors")
                assertTrue("over max_payload_size (2048)" in errors[0], errors[0])
                assertEquals(1L, small.metrics().connects) // the connection stayed up
            }
        }
    }
}
