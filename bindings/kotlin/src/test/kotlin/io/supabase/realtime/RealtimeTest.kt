package io.supabase.realtime

import io.supabase.realtime.ffi.ChannelOptions
import io.supabase.realtime.ffi.ChannelState
import io.supabase.realtime.ffi.ClientOptions
import io.supabase.realtime.ffi.PostgresChangesFilter
import io.supabase.realtime.ffi.RealtimeException
import io.supabase.realtime.ffi.SubscribeStatus
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.flow.filterIsInstance
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.withTimeoutOrNull
import kotlinx.serialization.json.buildJsonObject
import kotlinx.serialization.json.int
import kotlinx.serialization.json.jsonPrimitive
import kotlinx.serialization.json.put
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Assumptions.assumeTrue
import org.junit.jupiter.api.Test

private const val DEADLINE_MS = 10_000L

private fun client() = RealtimeClient(ClientOptions(url = TestServer.url, apiKey = TestServer.anonKey))

private fun <T> test(body: suspend () -> T): T = runBlocking { withTimeout(60_000) { body() } }

class RealtimeTest {
    @Test
    fun broadcastBetweenClientsWithAckSelfAndBinary() = test {
        val name = TestServer.unique("room")
        client().use { a ->
            client().use { b ->
                val ca = a.channel(name, ChannelOptions(broadcastSelf = true, broadcastAck = true))
                val cb = b.channel(name)
                val ownEvents = ca.events()
                val peerEvents = cb.events()
                ca.subscribe()
                cb.subscribe()
                assertEquals(ChannelState.JOINED, ca.state)
                ca.send("hello", buildJsonObject { put("n", 1) }) // returns on the ack
                for (events in listOf(ownEvents, peerEvents)) {
                    val msg = withTimeout(DEADLINE_MS) { events.filterIsInstance<RealtimeEvent.Broadcast>().first() }
                    assertEquals("hello", msg.event)
                    assertEquals("realtime:$name", msg.topic)
                    assertEquals(1, msg.payload!!.jsonObject()["n"]!!.jsonPrimitive.int)
                }
                val binEvents = cb.events()
                ca.send("bytes", byteArrayOf(0, 1, -1))
                val bin = withTimeout(DEADLINE_MS) { binEvents.filterIsInstance<RealtimeEvent.Broadcast>().first() }
                assertArrayEquals(byteArrayOf(0, 1, -1), bin.binary)
            }
        }
    }

    @Test
    fun presenceJoinStateAndLeave() = test {
        val name = TestServer.unique("lobby")
        client().use { a ->
            client().use { b ->
                val ca = a.channel(name, ChannelOptions(presenceKey = "alice"))
                val cb = b.channel(name, ChannelOptions(presenceKey = "bob"))
                val joins = CompletableDeferred<RealtimeEvent.PresenceJoin>()
                val leaves = CompletableDeferred<RealtimeEvent.PresenceLeave>()
                ca.onPresence {
                    if (it is RealtimeEvent.PresenceJoin && it.key == "bob") joins.complete(it)
                    if (it is RealtimeEvent.PresenceLeave && it.key == "bob") leaves.complete(it)
                }
                ca.subscribe()
                cb.subscribe()
                cb.track(buildJsonObject { put("user", "bob") })
                val join = withTimeout(DEADLINE_MS) { joins.await() }
                assertEquals("bob", join.new[0]["user"]!!.jsonPrimitive.content)
                assertTrue("presence_ref" in join.new[0])
                assertTrue("bob" in ca.presenceState())
                cb.untrack()
                val leave = withTimeout(DEADLINE_MS) { leaves.await() }
                assertEquals("bob", leave.left[0]["user"]!!.jsonPrimitive.content)
                assertFalse("bob" in ca.presenceState())
            }
        }
    }

    @Test
    fun postgresChangesFollowRls() = test {
        assumeTrue(TestServer.databaseUrl != null, "no DATABASE_URL")
        val table = TestServer.unique("kt_notes").replace("-", "_")
        val alice = "11111111-1111-1111-1111-111111111111"
        val bob = "22222222-2222-2222-2222-222222222222"
        TestServer.psql(
            """
            create table $table (id int primary key, owner uuid, body text);
            alter table $table enable row level security;
            create policy own on $table for select to authenticated using (owner = auth.uid());
            alter publication supabase_realtime add table $table;
            """.trimIndent(),
        )
        try {
            client().use { c ->
                c.setAuth(TestServer.userToken(alice))
                val ch = c.channel(TestServer.unique("db"))
                val changes = CompletableDeferred<RealtimeEvent.PostgresChange>()
                ch.onPostgresChanges(PostgresChangesFilter(event = "INSERT", table = table)) { changes.complete(it) }
                ch.subscribe() // SUBSCRIBED once changes flow
                TestServer.psql("insert into $table values (1, '$bob', 'not mine'), (2, '$alice', 'mine')")
                val change = withTimeout(DEADLINE_MS) { changes.await() }
                assertEquals("INSERT", change.eventType)
                assertEquals(2, change.new["id"]!!.jsonPrimitive.int)
                assertEquals(table, change.table)
            }
        } finally {
            TestServer.psql("drop table if exists $table")
        }
    }

    @Test
    fun refusedJoinCarriesTheServersReason() = test {
        client().use { c ->
            c.setAuth(TestServer.userToken("11111111-1111-1111-1111-111111111111", expiresIn = -120))
            val e: RealtimeException.ChannelException = try {
                c.channel(TestServer.unique("auth")).subscribe()
                error("subscribe should fail")
            } catch (e: RealtimeException.ChannelException) {
                e
            }
            assertTrue(e.reason.startsWith("InvalidJWTToken: Token has expired"), e.reason)
            assertFalse(e.recoverable)
        }
    }

    @Test
    fun listenersRunOnTheDispatchThreadAndMayCallBack() = test {
        val name = TestServer.unique("echo")
        client().use { a ->
            client().use { b ->
                val echo = a.channel(name)
                val thread = CompletableDeferred<String>()
                echo.onBroadcast("ping") {
                    thread.complete(nativeThreadName())
                    echo.sendNowait("pong", buildJsonObject { put("n", it.payload!!.jsonObject()["n"]!!.jsonPrimitive.int + 1) })
                    echo.unsubscribeNowait()
                }
                val echoEvents = echo.events()
                val peer = b.channel(name)
                val peerEvents = peer.events()
                echo.subscribe()
                peer.subscribe()
                peer.send("ping", buildJsonObject { put("n", 1) })
                val pong = withTimeout(DEADLINE_MS) {
                    peerEvents.filterIsInstance<RealtimeEvent.Broadcast>().first { it.event == "pong" }
                }
                assertEquals(2, pong.payload!!.jsonObject()["n"]!!.jsonPrimitive.int)
                assertEquals("supa-dispatch", thread.await())
                val statuses = withTimeout(DEADLINE_MS) {
                    echoEvents.filterIsInstance<RealtimeEvent.ChannelStatus>().toList().map { it.status }
                }
                assertEquals(SubscribeStatus.CLOSED, statuses.last())
            }
        }
    }

    @Test
    fun cancelledSuspendLeavesTheClientUsable() = test {
        val dead = ClientOptions(url = "http://127.0.0.1:9/realtime/v1", apiKey = TestServer.anonKey, reconnectDelaysMs = listOf(50uL))
        RealtimeClient(dead).use { c ->
            assertEquals(null, withTimeoutOrNull(300) { c.connected() }) // cancels the native future
        }
        client().use { c ->
            withTimeoutOrNull(1) { c.channel(TestServer.unique("room")).subscribe() } // usually cancelled mid-join
            c.channel(TestServer.unique("room2")).subscribe()
        }
    }
}

/** The OS thread name (JNA gives attached native threads generic Java names). */
private fun nativeThreadName() = java.io.File("/proc/thread-self/comm").readText().trim()

private fun kotlinx.serialization.json.JsonElement.jsonObject() = this as kotlinx.serialization.json.JsonObject
