package io.supabase.realtime

import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Deferred
import kotlinx.coroutines.Job
import kotlinx.coroutines.async
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.filter
import kotlinx.coroutines.flow.filterIsInstance
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.launchIn
import kotlinx.coroutines.flow.map
import kotlinx.coroutines.flow.onEach
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.takeWhile
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.plus
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.withTimeoutOrNull
import kotlinx.serialization.Serializable
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.buildJsonObject
import kotlinx.serialization.json.int
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.jsonPrimitive
import kotlinx.serialization.json.put
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Assumptions.assumeTrue
import org.junit.jupiter.api.Test
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

private const val DEADLINE_MS = 10_000L

private fun client(configure: RealtimeConfig.() -> Unit = {}) = RealtimeClient(TestServer.url, TestServer.anonKey, configure)

private fun test(body: suspend CoroutineScope.() -> Unit) = runBlocking { withTimeout(60_000) { body() } }

/** Starts collecting now (the flow's listener is registered before this returns): the first match. */
private fun <T> CoroutineScope.collecting(flow: Flow<T>, match: (T) -> Boolean = { true }) =
    async(start = CoroutineStart.UNDISPATCHED) { flow.first(match) }

/** Starts collecting now: everything until the flow completes. */
private fun <T> CoroutineScope.collectingAll(flow: Flow<T>) = async(start = CoroutineStart.UNDISPATCHED) { flow.toList() }

/** The result, waited for with a deadline that starts now (not when collection started). */
private suspend fun <T> Deferred<T>.within(): T = withTimeout(DEADLINE_MS) { await() }

@Serializable
data class Cursor(val x: Int, val y: Int)

@Serializable
data class Note(val id: Int, val body: String? = null)

@Serializable
data class User(val user: String)

class RealtimeTest {
    @Test
    fun persistedBroadcastsReplayOnJoinWithIdsInOrder() = test {
        assumeTrue(TestServer.databaseUrl != null, "no DATABASE_URL")
        TestServer.psql(
            """
            drop policy if exists kt_replay_read on realtime.messages;
            drop policy if exists kt_replay_write on realtime.messages;
            create policy kt_replay_read on realtime.messages for select to authenticated
              using (realtime.topic() like 'kt-replay-%');
            create policy kt_replay_write on realtime.messages for insert to authenticated
              with check (realtime.topic() like 'kt-replay-%');
            """.trimIndent(),
        )
        val user = "44444444-4444-4444-8444-444444444444"
        val name = TestServer.unique("kt-replay")
        val since = System.currentTimeMillis() - 60_000
        client { accessTokenProvider = { TestServer.userToken(user) } }.use { sender ->
            client { accessTokenProvider = { TestServer.userToken(user) } }.use { late ->
                val out = sender.channel(name) {
                    isPrivate = true
                    broadcast { acknowledgeBroadcasts = true }
                }
                out.subscribe()
                out.sendPersisted("note", buildJsonObject { put("n", 1) })
                out.sendPersisted("note", buildJsonObject { put("n", 2) }, ttl = 3600.seconds)
                out.sendPersisted("note", buildJsonObject { put("n", 3) }, http = true)

                val ch = late.channel(name) {
                    isPrivate = true
                    broadcast {
                        replay = ReplayConfig(since, 10)
                        replicationReady = true
                    }
                }
                val got = collectingAll(ch.broadcastFlow("note").take(4))
                ch.subscribe()
                ch.replicationReady()
                out.sendPersisted("note", buildJsonObject { put("n", 4) })
                val notes = got.within()
                assertEquals(listOf(1, 2, 3, 4), notes.map { it.payload!!.jsonObject["n"]!!.jsonPrimitive.int })
                assertEquals(listOf(true, true, true, false), notes.map { it.replayed })
                assertTrue(notes.all { it.id?.length == 36 })
                assertEquals(4, notes.map { it.id }.toSet().size)
            }
        }
    }

    @Test
    fun broadcastFlowsAreColdTypedAndCollectableManyTimes() = test {
        val name = TestServer.unique("room")
        client().use { a ->
            client().use { b ->
                val ca = a.channel(name) { broadcast { receiveOwnBroadcasts = true; acknowledgeBroadcasts = true } }
                val cb = b.channel(name)
                val raw = cb.broadcastFlow("cursor")
                val typed = cb.broadcastFlow<Cursor>("cursor")
                val first = collecting(raw)
                val second = collecting(raw) // the same flow, collected twice at once
                val decoded = collecting(typed)
                val own = collecting(ca.broadcastFlow<Cursor>("CURSOR")) // event names are case-insensitive
                ca.subscribe()
                cb.subscribe()
                assertEquals(ChannelStatus.SUBSCRIBED, ca.status.value)
                ca.send("cursor", Cursor(1, 2)) // returns on the server's ack
                assertEquals(1, first.within().payload!!.jsonObject["x"]!!.jsonPrimitive.int)
                assertEquals("realtime:$name", second.within().topic)
                assertEquals(Cursor(1, 2), decoded.within())
                assertEquals(Cursor(1, 2), own.within())

                // A later collection of the same flow sees later messages; a payload that does
                // not decode as Cursor is skipped by the typed flow.
                val again = collecting(typed)
                ca.send("cursor", buildJsonObject { put("nope", true) })
                ca.send("cursor", buildJsonObject { put("x", 3); put("y", 4) })
                assertEquals(Cursor(3, 4), again.within())

                val bin = collecting(cb.broadcastFlow("bytes"))
                ca.send("bytes", byteArrayOf(0, 1, -1))
                val m = bin.within()
                assertArrayEquals(byteArrayOf(0, 1, -1), m.binary)
                assertNull(m.payload)
                assertTrue(b.metrics().messagesIn > 0)
            }
        }
    }

    @Test
    fun aBurstReachesEveryCollectorCompleteAndInOrder() = test {
        // Events reach a collector one delivered batch at a time: a burst spans many batches
        // of many events, and each collector still sees every message once, in order.
        val name = TestServer.unique("burst")
        val n = 2_000
        client().use { a ->
            client().use { b ->
                val ca = a.channel(name)
                val cb = b.channel(name)
                fun <T> CoroutineScope.ids(flow: Flow<T>, id: (T) -> Int) =
                    async(start = CoroutineStart.UNDISPATCHED) { flow.take(n).map(id).toList() }
                val raw = ids(cb.broadcastFlow<JsonObject>("n")) { it["id"]!!.jsonPrimitive.int }
                val typed = ids(cb.broadcastFlow<Note>("n")) { it.id }
                val messages = ids(cb.broadcastFlow("*")) { it.payload!!.jsonObject["id"]!!.jsonPrimitive.int }
                // The channel's every-event flow: its status change, then the burst, in order.
                val all = async(start = CoroutineStart.UNDISPATCHED) { cb.events().take(n + 1).toList() }
                ca.subscribe()
                cb.subscribe()
                repeat(n) { ca.send("n", Note(it)) }
                val expected = (0 until n).toList()
                assertEquals(expected, raw.within())
                assertEquals(expected, typed.within())
                assertEquals(expected, messages.within())
                val events = all.within()
                assertEquals(SubscribeStatus.SUBSCRIBED, (events[0] as RealtimeEvent.SubscribeStatusChange).status)
                assertEquals(expected, events.drop(1).map { (it as BroadcastMessage).decodeAs<Note>().id })
                assertEquals(0L, b.metrics().droppedEvents)
            }
        }
    }

    @Test
    fun anOverflowingQueueDropsDataEventsAndSaysSoInOrder() = test {
        // Real overload: the library's queue is bounded (queueCapacity). A collector that runs
        // on the library's dispatch thread (unconfined) and blocks there holds up delivery, so
        // the burst behind it overflows the queue; the dropped events are counted and reported
        // in place by `Lagged`, and what is delivered stays in order.
        val name = TestServer.unique("lagged")
        val n = 200
        client().use { a ->
            client { queueCapacity = 10 }.use { b ->
                val ca = a.channel(name)
                val cb = b.channel(name)
                val release = java.util.concurrent.CountDownLatch(1)
                val blocker = launch(kotlinx.coroutines.Dispatchers.Unconfined, start = CoroutineStart.UNDISPATCHED) {
                    cb.broadcastFlow("n").collect { release.await(DEADLINE_MS, java.util.concurrent.TimeUnit.MILLISECONDS) }
                }
                val seen = async(start = CoroutineStart.UNDISPATCHED) {
                    cb.events().takeWhile { !(it is BroadcastMessage && it.event == "end") }
                        .filter { it is BroadcastMessage || it is RealtimeEvent.Lagged }.toList()
                }
                ca.subscribe()
                cb.subscribe()
                repeat(n) { ca.send("n", Note(it)) }
                withTimeout(DEADLINE_MS) { while (b.metrics().droppedEvents == 0L) delay(10) }
                release.countDown()
                // Once the queue has drained, the marker that ends the collection cannot overflow it.
                withTimeout(DEADLINE_MS) { while (b.metrics().queueDepth > 0L) delay(10) }
                ca.send("end", Note(-1))
                val events = seen.within()
                blocker.cancel()
                val dropped = events.filterIsInstance<RealtimeEvent.Lagged>().sumOf { it.dropped }
                val ids = events.filterIsInstance<BroadcastMessage>().map { it.decodeAs<Note>().id }
                assertTrue(dropped > 0, "$events")
                assertEquals(b.metrics().droppedEvents, dropped)
                assertEquals(n.toLong(), ids.size + dropped, "every message delivered or counted")
                assertEquals(ids.sorted(), ids, "in order")
            }
        }
    }

    @Test
    fun statusStateFlowAndEventsFollowTheChannel() = test {
        client().use { c ->
            assertEquals(ConnectionState.DISCONNECTED, c.status.value)
            val ch = c.channel(TestServer.unique("status"))
            assertEquals(ChannelStatus.UNSUBSCRIBED, ch.status.value)
            val events = collectingAll(ch.events().filterIsInstance<RealtimeEvent.SubscribeStatusChange>())
            ch.subscribe()
            assertEquals(ChannelStatus.SUBSCRIBED, ch.status.value)
            withTimeout(DEADLINE_MS) { c.status.first { it == ConnectionState.CONNECTED } }
            assertTrue(ch.topic in c.metrics().joinLatency)
            assertEquals(setOf(ch), c.subscriptions.values.toSet())
            c.removeChannel(ch)
            withTimeout(DEADLINE_MS) { ch.status.first { it == ChannelStatus.UNSUBSCRIBED } }
            // events() completes after the channel's final CLOSED status
            assertEquals(listOf(SubscribeStatus.SUBSCRIBED, SubscribeStatus.CLOSED), events.within().map { it.status })
            assertTrue(c.subscriptions.isEmpty())
            // a closed channel is single-use: its name now gives a fresh one
            val again = c.channel(ch.topic.removePrefix("realtime:"))
            assertFalse(again === ch)
            again.subscribe()
        }
    }

    @Test
    fun presenceChangeFlowDecodesJoinsAndLeaves() = test {
        val name = TestServer.unique("lobby")
        client().use { a ->
            client().use { b ->
                val ca = a.channel(name) { presence { key = "alice" } }
                val cb = b.channel(name) { presence { key = "bob" } }
                val changes = ca.presenceChangeFlow()
                val join = collecting(changes) { "bob" in it.joins }
                ca.subscribe()
                cb.subscribe()
                cb.track(User("bob"))
                val j = join.within()
                assertEquals(listOf(User("bob")), j.decodeJoinsAs<User>())
                assertTrue(j.joins["bob"]!![0].presenceRef.isNotEmpty())
                assertEquals("bob", ca.presenceState()["bob"]!![0].state["user"]!!.jsonPrimitive.content)
                val leave = collecting(changes) { "bob" in it.leaves }
                cb.untrack()
                assertEquals(listOf(User("bob")), leave.within().decodeLeavesAs<User>())
                assertFalse("bob" in ca.presenceState())
            }
        }
    }

    @Test
    fun postgresChangeFlowsDecodeRecordsUnderRls() = test {
        assumeTrue(TestServer.databaseUrl != null, "no DATABASE_URL")
        val table = TestServer.unique("kt_notes").replace("-", "_")
        val alice = "11111111-1111-1111-1111-111111111111"
        val bob = "22222222-2222-2222-2222-222222222222"
        TestServer.psql(
            """
            create table $table (id int primary key, owner uuid, body text);
            alter table $table replica identity full;
            alter table $table enable row level security;
            create policy own on $table for select to authenticated using (owner = auth.uid());
            alter publication supabase_realtime add table $table;
            """.trimIndent(),
        )
        try {
            client { accessTokenProvider = { TestServer.userToken(alice) } }.use { c ->
                val ch = c.channel(TestServer.unique("db"))
                val inserts = ch.postgresChangeFlow<PostgresAction.Insert>("public") { this.table = table }
                val updates = ch.postgresChangeFlow<PostgresAction.Update>("public") {
                    this.table = table
                    filter("id", FilterOperator.EQ, 2)
                }
                val all = ch.postgresChangeFlow<PostgresAction>("public") { this.table = table }
                val insert = collecting(inserts)
                val update = collecting(updates)
                val everything = collectingAll(all.take(3))
                ch.subscribe() // SUBSCRIBED once changes flow
                TestServer.psql("insert into $table values (1, '$bob', 'not mine'), (2, '$alice', 'mine')")
                TestServer.psql("update $table set body = 'edited' where id = 2")
                TestServer.psql("delete from $table where id = 2")
                val i = insert.within()
                assertEquals(Note(2, "mine"), i.decodeRecord<Note>())
                assertEquals(table, i.table)
                assertTrue(i.columns.any { it.name == "body" && it.type == "text" })
                val u = update.within()
                assertEquals(Note(2, "edited"), u.decodeRecord<Note>())
                assertEquals(Note(2, "mine"), u.decodeOldRecord<Note>())
                val seen = everything.within()
                assertEquals(listOf("Insert", "Update", "Delete"), seen.map { it::class.simpleName })
                assertEquals(2, (seen[2] as PostgresAction.Delete).decodeOldRecord<Note>().id)
                // bindings are part of the join: adding one afterwards is refused
                assertThrows(RealtimeException.InvalidArgument::class.java) {
                    ch.postgresChangeFlow<PostgresAction.Insert>("public") { this.table = table }
                }
            }
        } finally {
            TestServer.psql("drop table if exists $table")
        }
    }

    @Test
    fun refusedJoinCarriesTheServersReason() = test {
        client { accessToken = TestServer.userToken("11111111-1111-1111-1111-111111111111", expiresIn = -120) }.use { c ->
            val ch = c.channel(TestServer.unique("auth"))
            val e = assertThrows(RealtimeException.ChannelError::class.java) { runBlocking { ch.subscribe() } }
            assertTrue(e.reason.startsWith("InvalidJWTToken: Token has expired"), e.reason)
            assertFalse(e.recoverable)
            withTimeout(DEADLINE_MS) { ch.status.first { it == ChannelStatus.UNSUBSCRIBED } }
        }
    }

    @Test
    fun collectorsMayCallTheApiAndStopCleanly() = test {
        val name = TestServer.unique("echo")
        client().use { a ->
            client().use { b ->
                val echo = a.channel(name)
                val peer = b.channel(name)
                // the echo replies from inside its collector, then leaves
                val echoing: Job = echo.broadcastFlow("ping").onEach {
                    val n = it.payload!!.jsonObject["n"]!!.jsonPrimitive.int
                    echo.send("pong", buildJsonObject { put("n", n + 1) })
                    echo.unsubscribe()
                }.launchIn(this + kotlinx.coroutines.Dispatchers.Default)
                val pong = collecting(peer.broadcastFlow("pong"))
                echo.subscribe()
                peer.subscribe()
                peer.send("ping", buildJsonObject { put("n", 1) })
                assertEquals(2, pong.within().payload!!.jsonObject["n"]!!.jsonPrimitive.int)
                // the echo channel closed, so its flows complete by themselves
                withTimeout(DEADLINE_MS) { echoing.join() }
            }
        }
    }

    @Test
    fun closingTheClientCompletesItsFlows() = test {
        val c = client()
        val ch = c.channel(TestServer.unique("bye"))
        val collected = collectingAll(ch.broadcastFlow("x"))
        ch.subscribe()
        c.close()
        assertEquals(emptyList<BroadcastMessage>(), collected.within())
        assertEquals(ChannelStatus.UNSUBSCRIBED, ch.status.value)
    }

    @Test
    fun cancelledSuspendLeavesTheClientUsable() = test {
        RealtimeClient("http://127.0.0.1:9/realtime/v1", TestServer.anonKey) { reconnectDelays = listOf(50.milliseconds) }.use { c ->
            assertEquals(null, withTimeoutOrNull(300) { c.connected() }) // cancels the native future
        }
        client { heartbeatInterval = 5.seconds }.use { c ->
            withTimeoutOrNull(1) { c.channel(TestServer.unique("room")).subscribe() } // usually cancelled mid-join
            c.channel(TestServer.unique("room2")).subscribe()
        }
    }

    @Test
    fun badInputIsARealtimeException() = test {
        assertThrows(RealtimeException.InvalidArgument::class.java) { RealtimeClient("not a url", "key") }
        val c = client()
        c.close()
        assertThrows(RealtimeException.Shutdown::class.java) { c.connect() }
    }
}
