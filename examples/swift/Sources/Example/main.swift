// Subscribe to a table, a broadcast event and presence on one channel; print what arrives.
// Args: <url> <anon key> [table]. Tracks itself and broadcasts one `message`, so something
// always arrives; with a table (server with a database) it also prints its inserts.
import Foundation
import SupaRealtime

let args = CommandLine.arguments
let url = args.count > 1 ? args[1] : "http://127.0.0.1:4000/realtime/v1"
let key = args.count > 2 ? args[2] : ""
let table = args.count > 3 ? args[3] : nil

struct Presence: Codable { let user: String }
struct Message: Codable { let text: String }

let client = try RealtimeClient(url: url, apiKey: key)
let room = try client.channel("example") {
    $0.broadcast.receiveOwnBroadcasts = true
    $0.presence.key = "swift"
}

// Closures and streams are registered before subscribing (postgres bindings are part of the join).
let messages = room.broadcastStream(event: "message")
let presence = try room.onPresenceChange { action in
    print("presence joins: \((try? action.decodeJoins(as: Presence.self)) ?? [])")
}
let inserts = table.map { room.postgresChange(InsertAction.self, schema: "public", table: $0) }
let statuses = room.onStatusChange { status in print("status \(status)") }

try await room.subscribe()
print("subscribed to \(room.topic)")
try await room.track(Presence(user: "swift"))
try await room.broadcast(event: "message", message: Message(text: "hello from Swift"))

if let inserts {
    Task {
        for await insert in inserts {
            print("insert on \(insert.change.table): \(insert.recordJSON)")
        }
    }
}

let deadline = Task {
    try await Task.sleep(nanoseconds: 30_000_000_000)
    try await room.unsubscribe() // ends the streams
}
for await message in messages {
    print("broadcast \(message.event): \((try? message.decode(as: Message.self))?.text ?? "?")")
}
deadline.cancel()
presence.cancel()
statuses.cancel()
