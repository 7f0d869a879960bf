package io.supabase.realtime

import com.sun.jna.Callback
import com.sun.jna.CallbackThreadInitializer
import com.sun.jna.Native
import io.supabase.realtime.ffi.uniffiCallbackInterfaceBroadcastListener
import io.supabase.realtime.ffi.uniffiCallbackInterfaceEventBatchListener
import io.supabase.realtime.ffi.uniffiCallbackInterfaceEventListener
import io.supabase.realtime.ffi.uniffiCallbackInterfaceLogger
import io.supabase.realtime.ffi.uniffiCallbackInterfacePostgresChangeListener
import io.supabase.realtime.ffi.uniffiCallbackInterfacePresenceListener
import io.supabase.realtime.ffi.uniffiCallbackInterfaceSystemListener
import io.supabase.realtime.ffi.uniffiCallbackInterfaceTokenProvider
import io.supabase.realtime.ffi.uniffiCallbackInterfaceWakeupListener
import io.supabase.realtime.ffi.uniffiRustFutureContinuationCallbackImpl

/**
 * Keeps the library's threads attached to the JVM between callbacks. By default JNA attaches a
 * native thread for each callback and detaches it afterwards, which creates a `java.lang.Thread`
 * per event: the dispatch thread then delivered about 5,000 events/s. Attached once, each
 * callback costs only the call itself. JNA detaches the threads when they exit.
 */
internal object CallbackThreads {
    private val stayAttached = CallbackThreadInitializer(true, false, "supa-realtime-callback")

    init {
        val callbacks: List<Callback> = listOf(
            uniffiCallbackInterfaceEventBatchListener.onEvents,
            uniffiCallbackInterfaceEventBatchListener.uniffiFree,
            uniffiCallbackInterfaceEventBatchListener.uniffiClone,
            uniffiCallbackInterfaceEventListener.onEvent,
            uniffiCallbackInterfaceEventListener.uniffiFree,
            uniffiCallbackInterfaceEventListener.uniffiClone,
            uniffiCallbackInterfaceBroadcastListener.onBroadcast,
            uniffiCallbackInterfaceBroadcastListener.uniffiFree,
            uniffiCallbackInterfaceBroadcastListener.uniffiClone,
            uniffiCallbackInterfacePresenceListener.onPresence,
            uniffiCallbackInterfacePresenceListener.uniffiFree,
            uniffiCallbackInterfacePresenceListener.uniffiClone,
            uniffiCallbackInterfacePostgresChangeListener.onChange,
            uniffiCallbackInterfacePostgresChangeListener.uniffiFree,
            uniffiCallbackInterfacePostgresChangeListener.uniffiClone,
            uniffiCallbackInterfaceSystemListener.onSystem,
            uniffiCallbackInterfaceSystemListener.uniffiFree,
            uniffiCallbackInterfaceSystemListener.uniffiClone,
            uniffiCallbackInterfaceTokenProvider.token,
            uniffiCallbackInterfaceTokenProvider.uniffiFree,
            uniffiCallbackInterfaceTokenProvider.uniffiClone,
            uniffiCallbackInterfaceWakeupListener.wake,
            uniffiCallbackInterfaceWakeupListener.uniffiFree,
            uniffiCallbackInterfaceWakeupListener.uniffiClone,
            uniffiCallbackInterfaceLogger.log,
            uniffiCallbackInterfaceLogger.uniffiFree,
            uniffiCallbackInterfaceLogger.uniffiClone,
            uniffiRustFutureContinuationCallbackImpl,
        )
        for (cb in callbacks) Native.setCallbackThreadInitializer(cb, stayAttached)
    }

    /** Runs the registration once (before the first callback can happen). */
    fun install() = Unit
}
