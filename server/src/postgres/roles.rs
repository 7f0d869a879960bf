//! Which database roles a token's `role` claim may name. RLS is evaluated by switching to that
//! role, so the claim is checked before anything runs as it: only the API roles the server
//! allows (by default `anon`, `authenticated`, `service_role`) and `NOLOGIN` roles granted
//! directly to the server's login role; never a superuser, never a role that bypasses RLS (except
//! `service_role`, whose purpose that is), never a predefined `pg_*` role or the login role
//! itself. Names are compared exactly, as PostgreSQL stores them: `Anon` is not `anon`.

use tokio_postgres::Client;

use super::db;

/// The API roles allowed by default.
pub const DEFAULT_ROLES: [&str; 3] = ["anon", "authenticated", "service_role"];

/// `Ok` when RLS may be evaluated as `role`; otherwise the error PostgreSQL itself gives for
/// such a role (Postgrex's form), which is what Supabase shows for it.
pub async fn check(client: &Client, allowed: &[String], role: &str) -> Result<(), String> {
    let row = client
        .query_opt(
            "select r.rolsuper, r.rolbypassrls, r.rolname = session_user, not r.rolcanlogin and \
               exists (select 1 from pg_auth_members m \
                       where m.roleid = r.oid and m.member = (select oid from pg_roles where rolname = session_user)) \
             from pg_roles r where r.rolname = $1",
            &[&role],
        )
        .await
        .map_err(|e| db::message(&e))?;
    let Some(row) = row else {
        return Err(format!(
            "ERROR 42704 (undefined_object) role \"{role}\" does not exist"
        ));
    };
    let (superuser, bypassrls, login, granted): (bool, bool, bool, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let forbidden =
        superuser || (bypassrls && role != "service_role") || login || role.starts_with("pg_");
    if !forbidden && (allowed.iter().any(|a| a == role) || granted) {
        Ok(())
    } else {
        Err(format!(
            "ERROR 42501 (insufficient_privilege) permission denied to set role \"{role}\""
        ))
    }
}
