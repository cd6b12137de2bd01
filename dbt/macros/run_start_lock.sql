{#-
    on-run-start, first and last hooks (dbt_project.yml): the hooks between them create and
    drop shared objects (schemas, tables, functions), and Cosmos starts one dbt invocation per
    model, several at once. Two `create ... if not exists` or `drop function` statements on the
    same object at the same moment fail ("tuple concurrently updated", a duplicate key in the
    catalogue), so the invocations take turns through this section: a session-level advisory
    lock on dbt's connection, released by the last hook (or when the connection closes, if a
    hook in between fails). The key is MarketFlow's own constant.
-#}
{% macro run_start_lock_key() %}727401{% endmacro %}

{% macro lock_run_start() %}
select pg_advisory_lock({{ run_start_lock_key() }});
{% endmacro %}

{% macro unlock_run_start() %}
select pg_advisory_unlock({{ run_start_lock_key() }});
{% endmacro %}
