// Subscribe to a table, a broadcast event and presence on one channel; print what arrives.
// Args: <url> <anon key> [table]. Tracks itself and broadcasts one `message`, so something
// always arrives; with a table (server with a database) it also prints its changes.
// Runs for 30 s, or with ONCE=1 until its own broadcast and presence join came back (and, with a
// table, one change); then exits 1 if one is missing.

import io.supabase.realtime.PostgresAction
import io.supabase.realtime.RealtimeClient
import io.supabase.realtime.decodeJoinsAs
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.flow.launchIn
import kotlinx.coroutines.flow.onEach
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeoutOrNull
import kotlinx.serialization.Serializable
import kotlin.system.exitProcess

@Serializable
data class Message(val text: String)

@Serializable
data class User(val user: String)

fun main(args: Array<String>): Unit = runBlocking {
    val url = args.getOrElse(0) { "http://127.0.0.1:4000/realtime/v1" }
    val anonKey = args.getOrElse(1) { "" }
    val table = args.getOrNull(2)
    val once = System.getenv("ONCE") == "1"

    RealtimeClient(url, anonKey).use { client ->
        val room = client.channel("example") {
            broadcast { receiveOwnBroadcasts = true }
            presence { key = "kotlin" }
        }
        // Flows are cold; postgres and presence flows are made before subscribing (they are
        // part of the join). Collection starts undispatched, so nothing is missed.
        val messages = room.broadcastFlow<Message>("message")
        val presence = room.presenceChangeFlow()
        val changes = table?.let { t -> room.postgresChangeFlow<PostgresAction>("public") { this.table = t } }
        val sawMessage = CompletableDeferred<Unit>()
        val sawPresence = CompletableDeferred<Unit>()
        val sawChange = CompletableDeferred<Unit>()
        val complete = withTimeoutOrNull(30_000) {
            coroutineScope {
                val jobs = listOfNotNull(
                    launch(start = CoroutineStart.UNDISPATCHED) {
                        messages.collect { println("broadcast message: ${it.text}"); sawMessage.complete(Unit) }
                    },
                    launch(start = CoroutineStart.UNDISPATCHED) {
                        presence.collect { println("presence joins: ${it.decodeJoinsAs<User>()}"); sawPresence.complete(Unit) }
                    },
                    changes?.onEach { println("$it"); sawChange.complete(Unit) }?.launchIn(this),
                    room.status.onEach { println("status $it") }.launchIn(this),
                )
                room.subscribe()
                println("subscribed to ${room.topic}")
                room.track(User("kotlin"))
                room.send("message", Message("hello from Kotlin"))
                if (once) {
                    sawMessage.await()
                    sawPresence.await()
                    if (changes != null) sawChange.await()
                    jobs.forEach { it.cancel() }
                }
            }
        }
        if (once && complete == null) {
            System.err.println("missing events after 30 s")
            exitProcess(1)
        }
    }
}
