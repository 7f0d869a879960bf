//! supa-realtime-server: a local Supabase Realtime server (work in progress).

pub mod postgres;
