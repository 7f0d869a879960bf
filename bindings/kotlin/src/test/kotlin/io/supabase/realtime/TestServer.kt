package io.supabase.realtime

import java.io.BufferedReader
import java.io.File
import java.util.Base64
import java.util.UUID
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import javax.crypto.Mac
import javax.crypto.spec.SecretKeySpec

/**
 * Copies a process's stdout lines into a queue. A class of its own: code compiled into
 * [TestServer] would wait, on this thread, for TestServer's initialization, which waits here.
 */
class LineReader(private val proc: Process, private val lines: LinkedBlockingQueue<String>) : Thread() {
    init {
        isDaemon = true
    }

    override fun run() {
        proc.inputStream.bufferedReader().use { r: BufferedReader ->
            while (true) lines.put(r.readLine() ?: break)
        }
    }
}

/** A real supa-realtime-server on a free loopback port, shared by all tests (with PostgreSQL when DATABASE_URL is set). */
object TestServer {
    const val SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
    val databaseUrl: String? = System.getenv("DATABASE_URL")?.takeIf { it.isNotEmpty() }
    val url: String
    val anonKey: String
    private val process: Process

    init {
        val root = File(System.getProperty("user.dir")).resolve("../..").canonicalFile
        val binary = System.getenv("SUPA_REALTIME_SERVER") ?: root.resolve("target/debug/supa-realtime-server").path
        val args = mutableListOf(binary, "--listen", "127.0.0.1:0")
        // A temporary replication slot: test servers leave nothing behind in the database.
        databaseUrl?.let { args += listOf("--database-url", it, "--temporary-slot") }
        val proc = ProcessBuilder(args).redirectError(ProcessBuilder.Redirect.DISCARD).start()
        process = proc
        val lines = LinkedBlockingQueue<String>()
        LineReader(proc, lines).start()
        fun line(prefix: String): String {
            val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15)
            while (System.nanoTime() < deadline) {
                val l = lines.poll(100, TimeUnit.MILLISECONDS) ?: continue
                if (l.startsWith(prefix)) return l.removePrefix(prefix).trim()
            }
            error("server did not print '$prefix' (alive=${proc.isAlive}, binary=$binary)")
        }
        url = line("listening on ") + "/realtime/v1"
        anonKey = line("anon key: ")
        Runtime.getRuntime().addShutdownHook(Thread { proc.destroy() })
    }

    fun unique(prefix: String) = "$prefix-${UUID.randomUUID().toString().take(8)}"

    private fun b64(bytes: ByteArray) = Base64.getUrlEncoder().withoutPadding().encodeToString(bytes)

    /** An HS256 JWT signed with the server's default secret. */
    fun userToken(sub: String, expiresIn: Long = 3600): String {
        val header = b64("""{"alg":"HS256","typ":"JWT"}""".toByteArray())
        val exp = System.currentTimeMillis() / 1000 + expiresIn
        val body = b64("""{"role":"authenticated","sub":"$sub","exp":$exp}""".toByteArray())
        val mac = Mac.getInstance("HmacSHA256").apply { init(SecretKeySpec(SECRET.toByteArray(), "HmacSHA256")) }
        return "$header.$body.${b64(mac.doFinal("$header.$body".toByteArray()))}"
    }

    fun psql(sql: String) {
        val p = ProcessBuilder("psql", databaseUrl!!, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql)
            .redirectErrorStream(true).start()
        val out = p.inputStream.bufferedReader().readText()
        check(p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0) { "psql failed: $out" }
    }
}
