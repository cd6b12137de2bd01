{#-
    incremental_strategy='delete_insert_keyed': dbt's delete+insert, with nested loops allowed
    again for the delete. features_daily turns them off for its own query (its pre-hooks);
    the delete of the few rebuilt keys wants exactly one: index probes on the primary key
    instead of a scan of the whole table (0.7 s on 1.3M rows).
-#}
{% macro get_incremental_delete_insert_keyed_sql(arg_dict) %}
set local enable_nestloop = on;
{{ get_incremental_delete_insert_sql(arg_dict) }}
{% endmacro %}
