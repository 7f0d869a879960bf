// Subscribe to a table, a broadcast event and presence on one channel; print what arrives.
// Args: <url> <anon key> [table]. Tracks itself and broadcasts one `message`, so something
// always arrives; with a table (server with a database) it also prints its changes.
import Foundation
import SupaRealtime

let args = CommandLine.arguments
let url = args.count > 1 ? args[1] : "http://127.0.0.1:4000/realtime/v1"
let key = args.count > 2 ? args[2] : ""
let table = args.count > 3 ? args[3] : nil

struct Presence: Codable { let user: String }
struct Message: Codable { let text: String }

final class Ignore: PresenceListener, PostgresChangeListener, @unchecked Sendable {
    func onPresence(event: PresenceEvent) throws {}
    func onChange(change: PostgresChangePayload) throws {}
}

let client = try RealtimeClient(url: url, apiKey: key)
let room = client.channel(name: "example",
                          options: ChannelOptions(broadcastSelf: true, presenceKey: "swift"))
_ = room.onPresence(listener: Ignore()) // presence on
if let table {
    _ = try room.onPostgresChanges(filter: PostgresChangesFilter(table: table), listener: Ignore())
}
let events = room.events()
try await room.subscribe()
print("subscribed to \(room.topic())")
try await room.track(Presence(user: "swift"))
try await room.send("message", Message(text: "hello from Swift"))

let deadline = Task { try await Task.sleep(nanoseconds: 30_000_000_000); client.shutdown() }
for await event in events {
    switch event {
    case let .broadcast(message):
        print("broadcast \(message.event): \(String(describing: try? message.decode(Message.self)))")
    case let .presence(.join(_, key, _, newJson)):
        print("presence join \(key): \(newJson)")
    case let .postgresChange(change):
        print("\(change.eventType) on \(change.schema).\(change.table): new=\(change.newJson)")
    case let .channelStatus(_, status, reason, _, _):
        print("status \(status) \(reason ?? "")")
    default:
        break
    }
}
deadline.cancel()
