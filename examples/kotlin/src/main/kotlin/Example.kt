// Subscribe to a table, a broadcast event and presence on one channel; print what arrives.
// Args: <url> <anon key> [table]. Tracks itself and broadcasts one `message`, so something
// always arrives; with a table (server with a database) it also prints its changes.
// Runs for 30 s, or until it saw its own broadcast and presence join with ONCE=1.

import io.supabase.realtime.RealtimeClient
import io.supabase.realtime.RealtimeEvent
import io.supabase.realtime.ffi.ChannelOptions
import io.supabase.realtime.ffi.ClientOptions
import io.supabase.realtime.ffi.PostgresChangesFilter
import kotlinx.coroutines.flow.takeWhile
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeoutOrNull
import kotlinx.serialization.json.buildJsonObject
import kotlinx.serialization.json.put

fun main(args: Array<String>): Unit = runBlocking {
    val url = args.getOrElse(0) { "http://127.0.0.1:4000/realtime/v1" }
    val key = args.getOrElse(1) { "" }
    val table = args.getOrNull(2)
    val once = System.getenv("ONCE") == "1"

    RealtimeClient(ClientOptions(url = url, apiKey = key)).use { client ->
        val room = client.channel("example", ChannelOptions(broadcastSelf = true, presenceKey = "kotlin"))
        room.onPresence { } // presence on
        if (table != null) room.onPostgresChanges(PostgresChangesFilter(table = table)) { }
        val events = room.events()
        room.subscribe()
        println("subscribed to ${room.topic}")
        room.track(buildJsonObject { put("user", "kotlin") })
        room.send("message", buildJsonObject { put("text", "hello from Kotlin") })
        val seen = mutableSetOf<String>()
        withTimeoutOrNull(30_000) {
            events.takeWhile { !(once && seen.containsAll(listOf("broadcast", "presence"))) }.collect { e ->
                when (e) {
                    is RealtimeEvent.Broadcast -> println("broadcast ${e.event}: ${e.payload}").also { seen += "broadcast" }
                    is RealtimeEvent.PresenceJoin -> println("presence join ${e.key}: ${e.new}").also { seen += "presence" }
                    is RealtimeEvent.PostgresChange -> println("${e.eventType} on ${e.schema}.${e.table}: new=${e.new} old=${e.old}")
                    is RealtimeEvent.ChannelStatus -> println("status ${e.status} ${e.reason ?: ""}")
                    else -> {}
                }
            }
        }
    }
}
