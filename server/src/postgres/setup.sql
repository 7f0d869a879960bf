-- What a Supabase project already has and Realtime relies on; each object is created only
-- when missing, so running this against a real Supabase database changes nothing.
-- Run in one transaction under an advisory lock (several servers may start at once).

do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
    -- First run on this database: existing public tables get Supabase's grants too
    -- (later ones through the default privileges below). Never repeated, so privileges
    -- revoked afterwards stay revoked.
    grant usage on schema public to anon;
    execute 'grant all on all tables in schema public to anon';
    execute 'grant all on all sequences in schema public to anon';
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
    grant usage on schema public to authenticated;
    execute 'grant all on all tables in schema public to authenticated';
    execute 'grant all on all sequences in schema public to authenticated';
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
    grant usage on schema public to service_role;
    execute 'grant all on all tables in schema public to service_role';
    execute 'grant all on all sequences in schema public to service_role';
  end if;
  -- RLS is evaluated by switching to the subscriber's role, which needs membership
  -- unless we are superuser.
  if not (select rolsuper from pg_roles where rolname = current_user) then
    begin
      execute format('grant anon, authenticated, service_role to %I', current_user);
    exception when others then
      raise warning 'supa-realtime: could not grant anon, authenticated, service_role to %: %', current_user, sqlerrm;
    end;
  end if;
end
$$;

-- Supabase's default grants: the API roles can use the public schema, and RLS policies
-- decide what they see.
grant usage on schema public to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;

do $$
begin
  if not exists (select from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$$;

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

do $$
begin
  if to_regprocedure('auth.uid()') is null then
    create function auth.uid() returns uuid language sql stable as $f$
      select coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
      )::uuid
    $f$;
  end if;
  if to_regprocedure('auth.role()') is null then
    create function auth.role() returns text language sql stable as $f$
      select coalesce(
        nullif(current_setting('request.jwt.claim.role', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
      )::text
    $f$;
  end if;
  if to_regprocedure('auth.jwt()') is null then
    create function auth.jwt() returns jsonb language sql stable as $f$
      select coalesce(
        nullif(current_setting('request.jwt.claim', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')
      )::jsonb
    $f$;
  end if;
end
$$;
grant execute on all functions in schema auth to anon, authenticated, service_role;

create schema if not exists realtime;
grant usage on schema realtime to anon, authenticated, service_role;

do $$
begin
  if to_regclass('realtime.messages') is null then
    create table realtime.messages (
      topic text not null,
      extension text not null,
      payload jsonb,
      event text,
      private boolean default false,
      updated_at timestamp without time zone not null default now(),
      inserted_at timestamp without time zone not null default now(),
      id uuid not null default gen_random_uuid(),
      primary key (id, inserted_at)
    );
    create index messages_inserted_at_topic_index on realtime.messages (inserted_at desc, topic);
    alter table realtime.messages enable row level security;
  end if;
end
$$;
grant select, insert, update, delete on realtime.messages to anon, authenticated, service_role;
-- Binary broadcasts are stored as bytes (upstream's column, added the same way).
alter table realtime.messages add column if not exists binary_payload bytea;
-- Expiry of messages stored with a TTL (`persist[ttl]`); a table of its own so that
-- realtime.messages keeps upstream's shape. Only the server reads and writes it.
create table if not exists realtime.messages_expiry (
  id uuid primary key,
  expires_at timestamptz not null
);
create index if not exists messages_expiry_expires_at_index on realtime.messages_expiry (expires_at);
-- Replay reads a topic's newest rows first.
create index if not exists messages_topic_inserted_at_index on realtime.messages (topic, inserted_at desc);

-- The stream reads realtime.send() broadcasts through this publication (Supabase's name).
do $$
begin
  if not exists (select from pg_publication where pubname = 'supabase_realtime_messages_publication') then
    begin
      create publication supabase_realtime_messages_publication for table realtime.messages;
    exception when others then
      raise warning 'supa-realtime: could not create publication supabase_realtime_messages_publication (%): realtime.send() broadcasts are not delivered', sqlerrm;
    end;
  end if;
end
$$;

do $$
begin
  if to_regprocedure('realtime.topic()') is null then
    create function realtime.topic() returns text language sql stable as $f$
      select nullif(current_setting('realtime.topic', true), '')::text
    $f$;
  end if;

  if to_regprocedure('realtime.send(jsonb, text, text, boolean)') is null then
    -- Security definer: row triggers of any role may broadcast; reading is still governed
    -- by the SELECT policies of realtime.messages when the channel joins.
    create function realtime.send(payload jsonb, event text, topic text, private boolean default true)
    returns void language plpgsql security definer set search_path = '' as $f$
    declare
      generated_id uuid;
      final_payload jsonb;
    begin
      begin
        generated_id := gen_random_uuid();
        if payload ? 'id' then
          final_payload := payload;
        else
          final_payload := jsonb_set(payload, '{id}', to_jsonb(generated_id));
        end if;
        perform set_config('realtime.topic', topic, true);
        insert into realtime.messages (id, payload, event, topic, private, extension)
        values (generated_id, final_payload, event, topic, private, 'broadcast');
      exception when others then
        raise warning 'ErrorSendingBroadcastMessage: %', sqlerrm;
      end;
    end
    $f$;
  end if;

  if to_regprocedure('realtime.broadcast_changes(text, text, text, text, text, record, record, text)') is null then
    create function realtime.broadcast_changes(
      topic_name text, event_name text, operation text, table_name text, table_schema text,
      new record, old record, level text default 'ROW'
    ) returns void language plpgsql as $f$
    declare
      row_data jsonb := '{}'::jsonb;
    begin
      if level = 'STATEMENT' then
        raise exception 'function can only be triggered for each row, not for each statement';
      end if;
      if operation = 'INSERT' or operation = 'UPDATE' or operation = 'DELETE' then
        row_data := jsonb_build_object('old_record', old, 'record', new, 'operation', operation,
                                       'table', table_name, 'schema', table_schema);
        perform realtime.send(row_data, event_name, topic_name);
      else
        raise exception 'Unexpected operation type: %', operation;
      end if;
    exception when others then
      raise exception 'Failed to process the row: %', sqlerrm;
    end
    $f$;
  end if;
end
$$;
grant execute on all functions in schema realtime to anon, authenticated, service_role;
