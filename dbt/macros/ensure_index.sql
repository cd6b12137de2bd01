{#-
    Post-hook: a one-column btree index on `column` of the model's table, created when the
    table has none (a full refresh builds a new table; an older table gains it on its next
    run). Postgres names it; no fixed name can collide with the backup of a full refresh.
-#}
{% macro ensure_index(column) %}
do $$
begin
    if not exists (
        select 1
        from pg_index as i
        join pg_attribute as a
            on a.attrelid = i.indrelid
            and a.attnum = i.indkey[0]
        where i.indrelid = '{{ this }}'::regclass
            and i.indnkeyatts = 1
            and a.attname = '{{ column }}'
    ) then
        create index on {{ this }} ({{ column }});
    end if;
end
$$
{% endmacro %}


{#-
    Post-hook: ANALYZE the model's table when it has never been analyzed (a first build or a
    full refresh: pg_class.reltuples is -1; run it before ensure_index(), as CREATE INDEX
    sets reltuples). Without statistics the planner guesses that a filter on trade_date keeps
    a third of the table and scans all of it, which the next incremental run and its data
    tests would pay for; autovacuum may be off or late.
-#}
{% macro analyze_if_new() %}
do $$
begin
    if (select reltuples from pg_class where oid = '{{ this }}'::regclass) < 0 then
        analyze {{ this }};
    end if;
end
$$
{% endmacro %}
