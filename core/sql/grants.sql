-- Read-only roles. Run by the database owner after schema.sql; idempotent.
grant usage on schema signals, monitoring, api to marketflow_api;
grant select on all tables in schema signals, monitoring to marketflow_api;
alter default privileges in schema signals, monitoring grant select on tables to marketflow_api;
-- The API checks a key through api.active_key_id (schema.sql, SECURITY DEFINER): it cannot
-- read the table of key hashes (earlier releases granted it; taken back here).
revoke select on all tables in schema api from marketflow_api;
alter default privileges in schema api revoke select on tables from marketflow_api;
revoke all on function api.active_key_id(text) from public;
grant execute on function api.active_key_id(text) to marketflow_api;

create schema if not exists marts;
grant usage on schema marts to marketflow_analyst;
grant select on all tables in schema marts to marketflow_analyst;
alter default privileges in schema marts grant select on tables to marketflow_analyst;
-- The API's on-demand scoring reads the champion's look-back window of features.
grant usage on schema marts to marketflow_api;
grant select on all tables in schema marts to marketflow_api;
alter default privileges in schema marts grant select on tables to marketflow_api;
