package io.supabase.realtime

import java.util.logging.Level
import io.supabase.realtime.ffi.Logger as FfiLogger

/** The severity of a library log record, most severe first. */
enum class LogLevel { ERROR, WARN, INFO, DEBUG, TRACE }

/**
 * Receives the library's log records: connects, joins, reconnects, refusals and errors.
 * [target] is the library module (`supa_realtime::engine`, ...).
 */
fun interface RealtimeLogger {
    fun log(level: LogLevel, target: String, message: String)
}

/** Process-wide settings of the library. */
object Realtime {
    /**
     * Sends the library's log records up to [level] to [logger], for every client of the
     * process; `null` turns logging off again (the default, which costs nothing). The logger
     * is called on the library's `supa-log` thread, one record at a time, in order, never on
     * its network thread; a logger that throws loses that record only.
     *
     * ```
     * Realtime.setLogger(LogLevel.DEBUG) { level, target, message -> println("$level $target: $message") }
     * ```
     */
    fun setLogger(level: LogLevel = LogLevel.INFO, logger: RealtimeLogger?) {
        CallbackThreads.install()
        val adapter = logger?.let { LoggerAdapter(it) }
        ffiCall { io.supabase.realtime.ffi.setLogger(if (adapter == null) 0u else level.ordinal.toUInt() + 1u, adapter) }
    }

    /** [setLogger] onto java.util.logging's `io.supabase.realtime` logger (SEVERE, WARNING, INFO, FINE, FINER). */
    fun logToJavaUtilLogging(level: LogLevel = LogLevel.INFO) = setLogger(level) { l, target, message ->
        val julLevel = when (l) {
            LogLevel.ERROR -> Level.SEVERE
            LogLevel.WARN -> Level.WARNING
            LogLevel.INFO -> Level.INFO
            LogLevel.DEBUG -> Level.FINE
            LogLevel.TRACE -> Level.FINER
        }
        log.log(julLevel, "$target: $message")
    }
}

private class LoggerAdapter(private val logger: RealtimeLogger) : FfiLogger {
    override fun log(level: UInt, target: String, message: String) {
        val l = LogLevel.entries.getOrElse(level.toInt() - 1) { LogLevel.TRACE }
        try {
            logger.log(l, target, message)
        } catch (_: Throwable) {
            // A failing logger must not take the library's log thread with it.
        }
    }
}
